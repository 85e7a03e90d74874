package notifier

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct{ in, region, want string }{
		{"922 11 333", "NO", "+4792211333"},
		{"+47 922 11 333", "NO", "+4792211333"},
		{"0047 92211333", "NO", "+4792211333"},
		{"+46 70 123 45 67", "NO", "+46701234567"},
		{"070-123 45 67", "SE", "+46701234567"},
		{"", "NO", ""},
	} {
		got, err := NormalizePhone(tc.in, tc.region)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePhone(%q, %s) = %q, %v; want %q", tc.in, tc.region, got, err, tc.want)
		}
	}
	for _, bad := range []string{"12345", "+47 123 45", "+4712345678", "not a number", "+999 1234567"} {
		if got, err := NormalizePhone(bad, "NO"); !errors.Is(err, ErrInvalidPhone) {
			t.Errorf("NormalizePhone(%q) = %q, %v; want ErrInvalidPhone", bad, got, err)
		}
	}
}

func TestDefaultRegion(t *testing.T) {
	t.Cleanup(func() { _ = SetDefaultRegion(FallbackRegion) })
	if DefaultRegion() != "NO" {
		t.Fatalf("default region %q, want NO", DefaultRegion())
	}
	for _, bad := range []string{"", "XX", "Norway", "ZZ"} {
		if err := SetDefaultRegion(bad); err == nil {
			t.Errorf("SetDefaultRegion(%q) accepted", bad)
		}
	}
	if err := SetDefaultRegion("se"); err != nil || DefaultRegion() != "SE" {
		t.Fatalf("SetDefaultRegion(se): %v, region %q", err, DefaultRegion())
	}
	s := &Subscriber{ID: "a", Phone: "070 123 45 67"}
	if err := s.Normalize(); err != nil || s.Phone != "+46701234567" {
		t.Errorf("normalized in SE: %q, %v", s.Phone, err)
	}
}

func TestValidateRefusesInvalidPhone(t *testing.T) {
	s := &Subscriber{ID: "a", Phone: "+47 123"}
	_ = s.Normalize()
	err := s.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].Field != "phone" || !strings.Contains(ve.Problems[0].Problem, "not a valid phone number") {
		t.Fatalf("Validate = %v", err)
	}
	s = &Subscriber{ID: "a", Phone: " 922 11 333 "}
	if err := s.Normalize(); err != nil || s.Phone != "+4792211333" || s.Validate() != nil {
		t.Errorf("922 11 333: %q, %v", s.Phone, s.Validate())
	}
}

func TestCheckPhoneCode(t *testing.T) {
	digest := func(salt, code string) string { return salt + "/" + code }
	now := time.Now()
	mk := func() *Subscriber {
		return &Subscriber{ID: "a", Phone: "+4792211333", PhoneUnverified: true,
			PhoneCheck: &PhoneCheck{Digest: digest("s", "123456"), Salt: "s", Expires: now.Add(PhoneCodeValidity)}}
	}
	s := mk()
	if err := s.CheckPhoneCode("123 456", now, digest); err != nil || s.PhoneUnverified || s.PhoneCheck != nil {
		t.Fatalf("right code: %v, %+v", err, s)
	}
	s = mk()
	for i := 1; i < PhoneCodeAttempts; i++ {
		if err := s.CheckPhoneCode("000000", now, digest); !errors.Is(err, ErrPhoneCodeWrong) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if err := s.CheckPhoneCode("000000", now, digest); !errors.Is(err, ErrPhoneCodeLocked) {
		t.Fatalf("wrong code %d: %v, want locked", PhoneCodeAttempts, err)
	}
	if err := s.CheckPhoneCode("123456", now, digest); !errors.Is(err, ErrPhoneCodeLocked) || !s.PhoneUnverified {
		t.Fatalf("right code after the lock: %v", err)
	}
	s = mk()
	if err := s.CheckPhoneCode("123456", now.Add(PhoneCodeValidity), digest); !errors.Is(err, ErrPhoneCodeExpired) || !s.PhoneUnverified {
		t.Fatalf("expired code: %v", err)
	}
	for range 20 {
		c, err := NewPhoneCode()
		if err != nil || len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("NewPhoneCode = %q, %v", c, err)
		}
	}
}
