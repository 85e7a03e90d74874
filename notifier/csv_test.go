package notifier

import (
	"strings"
	"testing"
)

func TestReadSubscribersCSV(t *testing.T) {
	in := "email,id,locale,components,phone\n" +
		"kari@example.com,kari,nb,styreweb;gnist,\n" +
		"not-an-email,bad1,nb,,\n" +
		",nocontact,en,,\n" +
		"ola@example.com,ola,nn,*,+4791234567\n" +
		"x@example.com,kari,en,,\n" +
		"p@example.com,phone,en,,12345\n"
	subs, bad, err := ReadSubscribersCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].ID != "kari" || subs[1].ID != "ola" {
		t.Fatalf("good rows = %+v", subs)
	}
	if got := subs[0].Components; len(got) != 2 || got[1] != "gnist" {
		t.Errorf("components = %v", got)
	}
	if subs[1].Components != nil {
		t.Errorf("* should mean all components, got %v", subs[1].Components)
	}
	want := []string{"line 3, column email", "line 4, column email", "line 6, column id", "line 7, column phone"}
	if len(bad) != len(want) {
		t.Fatalf("bad rows = %v", bad)
	}
	for i, w := range want {
		if !strings.HasPrefix(bad[i].Error(), w) {
			t.Errorf("bad[%d] = %q, want it to start with %q", i, bad[i].Error(), w)
		}
	}
}

// TestReadSubscribersCSVQuoteLeftOpen: a quote opened and never closed
// is a bad row with its line, the rows before it are read (it panicked).
func TestReadSubscribersCSVQuoteLeftOpen(t *testing.T) {
	subs, bad, err := ReadSubscribersCSV(strings.NewReader("id,email\nb1,b1@example.com\n\"b9,broken\nb2,b2@example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].ID != "b1" {
		t.Errorf("good rows = %+v, want b1", subs)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0].Error(), "line 3") || !strings.Contains(bad[0].Error(), "quote") {
		t.Errorf("bad rows = %v, want one at line 3 naming the quote", bad)
	}
}

func TestReadSubscribersCSVHeader(t *testing.T) {
	for _, in := range []string{"", "id,colour\nx,red\n", "email\na@example.com\n", "id,id\n"} {
		if _, _, err := ReadSubscribersCSV(strings.NewReader(in)); err == nil {
			t.Errorf("header %q accepted", in)
		}
	}
}

// TestReadSubscribersCSVPhones: numbers are written in E.164, those without
// a country code read as of the default region (NO); an invalid one is the
// row's error in the phone column.
func TestReadSubscribersCSVPhones(t *testing.T) {
	in := "id,phone\n" +
		"a,922 11 333\n" +
		"b,+46 70 123 45 67\n" +
		"c,+47 123 45\n"
	subs, bad, err := ReadSubscribersCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].Phone != "+4792211333" || subs[1].Phone != "+46701234567" || subs[0].PhoneUnverified {
		t.Fatalf("good rows = %+v", subs)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0].Error(), "line 4, column phone: ") || !strings.Contains(bad[0].Error(), "not a valid phone number") {
		t.Fatalf("bad rows = %v", bad)
	}
}
