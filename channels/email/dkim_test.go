package email

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/varsel/varsel/notifier"
)

// testKey is a DKIM key pair and its DNS TXT record.
type testKey struct {
	signer crypto.Signer
	pem    []byte
	record string
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]*testKey{}
)

// dkimKeyFor returns a key of kind "ed25519" or "rsa-<bits>", generated
// once per test binary (RSA-4096 takes a while).
func dkimKeyFor(t *testing.T, kind string) *testKey {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[kind]; ok {
		return k
	}
	var k testKey
	if kind == "ed25519" {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.signer = priv
		k.record = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	} else {
		var bits int
		if _, err := fmt.Sscanf(kind, "rsa-%d", &bits); err != nil {
			t.Fatalf("key kind %q", kind)
		}
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		k.signer = priv
		k.record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
	k.pem = pemKey(t, k.signer)
	testKeys[kind] = &k
	return &k
}

// dnsRecords serves the public keys of a test: selector → TXT record under
// example.com; it counts lookups and refuses any other name.
// go-msgauth verifies several signatures in parallel.
type dnsRecords struct {
	records map[string]string
	mu      sync.Mutex
	lookups map[string]int
}

func (d *dnsRecords) options() *dkim.VerifyOptions {
	d.lookups = map[string]int{}
	return &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.lookups[domain]++
		sel, ok := strings.CutSuffix(domain, "._domainkey.example.com")
		if r, found := d.records[sel]; ok && found {
			return []string{r}, nil
		}
		return nil, fmt.Errorf("no TXT record at %q", domain)
	}}
}

// verifyAll verifies every signature of raw and fails unless there are
// want of them and each is valid; it returns them.
func verifyAll(t *testing.T, raw []byte, dns *dnsRecords, want int) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), dns.options())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(vs) != want {
		t.Fatalf("%d signatures, want %d\n%s", len(vs), want, raw)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("signature of d=%s does not verify: %v\n%s", v.Domain, v.Err, raw)
		}
		if v.Domain != "example.com" {
			t.Errorf("d= %q", v.Domain)
		}
	}
	for name, n := range dns.lookups {
		if n != 1 {
			t.Errorf("%d lookups of %s", n, name)
		}
	}
	return vs
}

// longestLine is the length of the longest line of raw without its CRLF.
func longestLine(raw []byte) int {
	n := 0
	for l := range bytes.SplitSeq(raw, []byte("\r\n")) {
		n = max(n, len(l))
	}
	return n
}

// signatureTags returns tag → value of each DKIM-Signature of raw, in order.
func signatureTags(t *testing.T, raw []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, f := range headerFields(t, raw) {
		if !strings.EqualFold(f.name, "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for kv := range strings.SplitSeq(f.value, ";") {
			k, v, _ := strings.Cut(kv, "=")
			if k = strings.TrimSpace(k); k != "" {
				tags[k] = strings.Join(strings.Fields(v), "")
			}
		}
		out = append(out, tags)
	}
	return out
}

type field struct{ name, value string }

// headerFields splits the header of raw into unfolded fields, in order.
func headerFields(t *testing.T, raw []byte) []field {
	t.Helper()
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header in\n%s", raw)
	}
	var fields []field
	for l := range strings.SplitSeq(string(head), "\r\n") {
		if l[0] == ' ' || l[0] == '\t' {
			fields[len(fields)-1].value += l // unfold: drop the CRLF only
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("header line without a colon: %q", l)
		}
		fields = append(fields, field{name, value})
	}
	return fields
}

// asMailStore re-serializes raw the way a mail store may before a later
// check (a forwarder, an archive, an IMAP server handing the message back):
// trace headers added on top, fields sorted by name (fields of one name
// keep their order), names in another case, every field unfolded and
// folded again right after the colon and elsewhere at whitespace, runs of
// whitespace changed, trailing whitespace added, and in the body trailing
// whitespace, doubled spaces and extra empty lines at the end. Relaxed
// canonicalization (RFC 6376 section 3.4.2, 3.4.4) ignores all of it;
// simple does not.
func asMailStore(t *testing.T, raw []byte) []byte {
	t.Helper()
	fields := headerFields(t, raw)
	sort.SliceStable(fields, func(i, j int) bool {
		return strings.ToLower(fields[i].name) < strings.ToLower(fields[j].name)
	})
	fields = append([]field{
		{"Return-Path", " <status@example.com>"},
		{"Received", " from mx.example.com (localhost [127.0.0.1]) by store.example.net; Tue, 1 Dec 2026 10:00:00 +0000"},
	}, fields...)
	seps := []string{" ", "\t", "  \t ", "\r\n\t", "\r\n   "}
	var b strings.Builder
	for i, f := range fields {
		name := strings.ToLower(f.name)
		if i%2 == 1 {
			name = strings.ToUpper(f.name)
		}
		b.WriteString(name + ":\r\n ") // go-mail's fold: right after the colon
		for j, w := range strings.Fields(f.value) {
			if j > 0 {
				b.WriteString(seps[(i+j)%len(seps)])
			}
			b.WriteString(w)
		}
		b.WriteString(" \t\r\n")
	}
	b.WriteString("\r\n")
	_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n")
	for i, l := range lines {
		l = strings.ReplaceAll(l, " ", "  ")
		if i%3 == 0 {
			l += " \t"
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n\r\n")
	return []byte(b.String())
}

// sendSigned sends one message through a channel signing with cfg's keys
// to a server that takes lines of at most 1,000 octets, CRLF included.
func sendSigned(t *testing.T, first, second *DKIMConfig) []byte {
	t.Helper()
	ts := startServer(t, func(ts *testServer) { ts.LineLimit = 1000 })
	cfg := ts.config()
	cfg.DKIM, cfg.DKIMRSA = first, second
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("updated-2", subscriber("kari"), &notifier.IncidentState{FirstEventID: "opened-1"}))
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered", len(msgs))
	}
	return msgs[0].Data
}

func TestDKIMRelaxedSurvivesMailStoreReserialization(t *testing.T) {
	for _, kind := range []string{"ed25519", "rsa-2048"} {
		t.Run(kind, func(t *testing.T) {
			key := dkimKeyFor(t, kind)
			dns := &dnsRecords{records: map[string]string{"varsel": key.record}}
			raw := sendSigned(t, &DKIMConfig{Domain: "example.com", Selector: "varsel", Key: key.pem}, nil)

			tags := signatureTags(t, raw)
			if len(tags) != 1 || tags[0]["c"] != "relaxed/relaxed" || tags[0]["s"] != "varsel" {
				t.Fatalf("signature tags %v, want one with c=relaxed/relaxed", tags)
			}
			verifyAll(t, raw, dns, 1)

			stored := asMailStore(t, raw)
			if bytes.Equal(stored, raw) || bytes.Contains(stored, []byte("\r\nFrom:")) ||
				!bytes.Contains(stored, []byte("dkim-signature:\r\n ")) {
				t.Fatalf("the re-serialization changed too little:\n%s", stored)
			}
			// Still the same message to a reader.
			orig, got := parse(t, raw), parse(t, stored)
			for _, h := range []string{"From", "To", "Subject", "Message-Id", "List-Unsubscribe", "In-Reply-To"} {
				if a, b := strings.Join(strings.Fields(orig.Header.Get(h)), " "), strings.Join(strings.Fields(got.Header.Get(h)), " "); a != b || a == "" {
					t.Errorf("%s: %q after the store, %q before", h, b, a)
				}
			}
			vs := verifyAll(t, stored, dns, 1)
			for _, h := range []string{"From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID"} {
				if n := countFold(vs[0].HeaderKeys, h); n != 2 && h != "Message-ID" || n == 0 {
					t.Errorf("h= %v holds %s %d times", vs[0].HeaderKeys, h, n)
				}
			}

			// A change of content, not of form, still breaks it.
			for name, edit := range map[string]func([]byte) []byte{
				"one-click URL": func(b []byte) []byte {
					return bytes.Replace(b, []byte("https://status.example.com/unsubscribe/"), []byte("https://evil.example.net/unsubscribe/"), 1)
				},
				"body": func(b []byte) []byte { return bytes.Replace(b, []byte("drift"), []byte("dr ift"), 1) },
				"added subject": func(b []byte) []byte {
					return append([]byte("Subject: Your password expires\r\n"), b...)
				},
			} {
				bad := edit(stored)
				if bytes.Equal(bad, stored) {
					t.Fatalf("%s: edit changed nothing", name)
				}
				vs, err := dkim.VerifyWithOptions(bytes.NewReader(bad), dns.options())
				if err != nil || len(vs) != 1 || vs[0].Err == nil {
					t.Errorf("%s changed and the signature still verifies (err %v)", name, err)
				}
			}

			// The same bytes signed with c=simple/simple do not survive the
			// store: the re-serialization is a real test of relaxed.
			var simple bytes.Buffer
			err := dkim.Sign(&simple, bytes.NewReader(stripSignatures(t, raw)), &dkim.SignOptions{
				Domain: "example.com", Selector: "varsel", Signer: key.signer,
				HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
			})
			if err != nil {
				t.Fatal(err)
			}
			verifyAll(t, simple.Bytes(), dns, 1)
			vs, err = dkim.VerifyWithOptions(bytes.NewReader(asMailStore(t, simple.Bytes())), dns.options())
			if err != nil || len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("a c=simple signature survived the store (err %v): the store test proves nothing", err)
			}
		})
	}
}

func countFold(keys []string, h string) int {
	n := 0
	for _, k := range keys {
		if strings.EqualFold(k, h) {
			n++
		}
	}
	return n
}

// stripSignatures returns raw without its DKIM-Signature fields.
func stripSignatures(t *testing.T, raw []byte) []byte {
	t.Helper()
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	var out []string
	skip := false
	for l := range strings.SplitSeq(string(head), "\r\n") {
		if l[0] != ' ' && l[0] != '\t' {
			skip = strings.HasPrefix(strings.ToLower(l), "dkim-signature:")
		}
		if !skip {
			out = append(out, l)
		}
	}
	return append([]byte(strings.Join(out, "\r\n")+"\r\n\r\n"), body...)
}

func TestDKIMEveryKeySizeKeepsLinesShort(t *testing.T) {
	for _, kind := range []string{"rsa-1024", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			key := dkimKeyFor(t, kind)
			dns := &dnsRecords{records: map[string]string{"varsel": key.record}}
			// The server refuses lines over 998 octets, as real ones do
			// ("500 Line too long"); sendSigned fails the test then.
			raw := sendSigned(t, &DKIMConfig{Domain: "example.com", Selector: "varsel", Key: key.pem}, nil)
			verifyAll(t, raw, dns, 1)
			if n := longestLine(raw); n > 998 {
				t.Errorf("a line of %d octets", n)
			}
			// Every line of the signature but h= fits in 78 columns
			// (RFC 5322 section 2.1.1); b= is folded in chunks.
			sig := signatureLines(t, raw)
			for _, l := range sig {
				if len(l) > 78 && !strings.HasPrefix(l, " h=") {
					t.Errorf("signature line of %d octets: %q", len(l), l)
				}
			}
			if !slices.ContainsFunc(sig, func(l string) bool { return strings.HasPrefix(l, " b=") }) {
				t.Errorf("b= does not start a line of its own: %q", sig)
			}
			t.Logf("%s: %d signature lines, longest line of the message %d octets", kind, len(sig), longestLine(raw))
		})
	}
}

// signatureLines returns the lines of the first DKIM-Signature field.
func signatureLines(t *testing.T, raw []byte) []string {
	t.Helper()
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	var out []string
	in := false
	for l := range strings.SplitSeq(string(head), "\r\n") {
		if l[0] != ' ' && l[0] != '\t' {
			if in {
				break
			}
			in = strings.HasPrefix(l, "DKIM-Signature:")
		}
		if in {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no DKIM-Signature in\n%s", raw)
	}
	return out
}

func TestDKIMEd25519AndRSABothVerify(t *testing.T) {
	ed, rsaKey := dkimKeyFor(t, "ed25519"), dkimKeyFor(t, "rsa-4096")
	dns := &dnsRecords{records: map[string]string{"ed": ed.record, "rsa": rsaKey.record}}
	raw := sendSigned(t, &DKIMConfig{Domain: "example.com", Selector: "ed", Key: ed.pem},
		&DKIMConfig{Selector: "rsa", Key: rsaKey.pem}) // the domain is the first key's

	tags := signatureTags(t, raw)
	if len(tags) != 2 {
		t.Fatalf("%d DKIM-Signature fields, want 2\n%s", len(tags), raw)
	}
	for i, want := range []struct{ s, a string }{{"ed", "ed25519-sha256"}, {"rsa", "rsa-sha256"}} {
		if tags[i]["s"] != want.s || tags[i]["a"] != want.a || tags[i]["d"] != "example.com" || tags[i]["c"] != "relaxed/relaxed" {
			t.Errorf("signature %d: s=%s a=%s d=%s c=%s, want s=%s a=%s", i, tags[i]["s"], tags[i]["a"], tags[i]["d"], tags[i]["c"], want.s, want.a)
		}
		if tags[i]["h"] != tags[0]["h"] || tags[i]["bh"] != tags[0]["bh"] {
			t.Errorf("the two signatures cover different things: %v / %v", tags[0], tags[i])
		}
	}
	verifyAll(t, raw, dns, 2)
	verifyAll(t, asMailStore(t, raw), dns, 2)
	if n := longestLine(raw); n > 998 {
		t.Errorf("a line of %d octets", n)
	}

	// A verifier that knows only RSA still has one good signature; one
	// that lost the RSA record still has the Ed25519 one.
	for _, only := range []string{"ed", "rsa"} {
		half := &dnsRecords{records: map[string]string{only: dns.records[only]}}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), half.options())
		if err != nil || len(vs) != 2 {
			t.Fatalf("verify: %v, %d signatures", err, len(vs))
		}
		good := 0
		for _, v := range vs {
			if v.Err == nil {
				good++
			}
		}
		if good != 1 {
			t.Errorf("with only the %s record: %d good signatures, want 1", only, good)
		}
	}
}

func TestDKIMBadKeysAreRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GODEBUG", "rsa1024min=0") // to make a key that small at all
	small, err := rsa.GenerateKey(rand.Reader, 512)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048 := dkimKeyFor(t, "rsa-2048")
	pubDER, err := x509.MarshalPKIXPublicKey(rsa2048.signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	ed := dkimKeyFor(t, "ed25519")

	for name, tc := range map[string]struct {
		file string
		want string
	}{
		"missing":    {filepath.Join(dir, "nope.pem"), "no such file"},
		"not pem":    {write("der.key", x509.MarshalPKCS1PrivateKey(small)), "not a PEM file"},
		"ecdsa sec1": {write("ec.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})), "ECDSA"},
		"ecdsa pkcs8": {write("ec8.pem", pemKey(t, ecKey)),
			"ecdsa.PrivateKey key: DKIM signs with RSA or Ed25519 only"},
		"rsa 512": {write("small.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})),
			"RSA key of 512 bits is too small: want at least 1024"},
		"public key": {write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), "not a private key"},
		"encrypted": {write("enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})),
			"encrypted"},
		"garbled": {write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})), "parse PRIVATE KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := CheckDKIMKeyFile(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("CheckDKIMKeyFile = %v, want an error naming %s and saying %q", err, tc.file, tc.want)
			}
			cfg := Config{Host: "127.0.0.1", DKIM: &DKIMConfig{Domain: "example.com", Selector: "varsel", KeyFile: tc.file}}
			if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}

	// Good keys, PKCS#1 and PKCS#8.
	for name, tc := range map[string]struct {
		file string
		alg  string
		bits int
	}{
		"rsa pkcs8": {write("rsa8.pem", rsa2048.pem), "rsa", 2048},
		"rsa pkcs1": {write("rsa1.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
			Bytes: x509.MarshalPKCS1PrivateKey(rsa2048.signer.(*rsa.PrivateKey))})), "rsa", 2048},
		"ed25519": {write("ed.pem", ed.pem), "ed25519", 256},
	} {
		alg, bits, err := CheckDKIMKeyFile(tc.file)
		if err != nil || alg != tc.alg || bits != tc.bits {
			t.Errorf("%s: CheckDKIMKeyFile = %s, %d, %v", name, alg, bits, err)
		}
	}

	// The second signature must be RSA, under a selector of its own.
	edFile, rsaFile := write("ed-2.pem", ed.pem), write("rsa-2.pem", rsa2048.pem)
	first := &DKIMConfig{Domain: "example.com", Selector: "ed", KeyFile: edFile}
	for name, tc := range map[string]struct {
		first, second *DKIMConfig
		want          string
	}{
		"ed25519 as second": {first, &DKIMConfig{Selector: "rsa", KeyFile: edFile}, "second dkim key is ed25519, want RSA"},
		"same selector":     {first, &DKIMConfig{Selector: "ed", KeyFile: rsaFile}, `dkim rsa selector "ed" is the same`},
		"no selector":       {first, &DKIMConfig{KeyFile: rsaFile}, "dkim rsa selector is required"},
		"no first":          {nil, &DKIMConfig{Domain: "example.com", Selector: "rsa", KeyFile: rsaFile}, "needs the first one"},
		"missing file":      {first, &DKIMConfig{Selector: "rsa", KeyFile: filepath.Join(dir, "gone.pem")}, "second (rsa) signature: read dkim key"},
		"good":              {first, &DKIMConfig{Selector: "rsa", KeyFile: rsaFile}, ""},
	} {
		err := Config{Host: "127.0.0.1", DKIM: tc.first, DKIMRSA: tc.second}.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate = %v, want %q", name, err, tc.want)
		}
	}
}

// No key material in what the channel says about itself or its errors.
func TestDKIMKeyNeverPrinted(t *testing.T) {
	key := dkimKeyFor(t, "rsa-2048")
	body := regexp.MustCompile(`(?s)-----BEGIN [A-Z ]+-----\n(.{40})`).FindSubmatch(key.pem)
	if body == nil {
		t.Fatalf("no PEM body in %s", key.pem)
	}
	cfg := Config{Host: "127.0.0.1", DKIM: &DKIMConfig{Domain: "example.com", Selector: "a", Key: key.pem},
		DKIMRSA: &DKIMConfig{Selector: "b", Key: key.pem[:len(key.pem)/2]}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("a truncated key was accepted")
	}
	for _, s := range []string{err.Error(), cfg.String(), fmt.Sprintf("%#v %v", cfg, cfg.LogValue()), fmt.Sprint(*cfg.DKIM)} {
		if strings.Contains(s, string(body[1])) || strings.Contains(s, "-----BEGIN") {
			t.Errorf("key material in %q", s)
		}
	}
}
