package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier"
)

// An import in several chunks finds every row by address afterwards (the
// address index is written a chunk at a time), reports a bad row of a later
// chunk by its line, and imports the rest.
func TestImportInChunksIndexesEveryRow(t *testing.T) {
	old := importChunk
	importChunk = 4
	t.Cleanup(func() { importChunk = old })
	svc, dir := testService(t, nil)
	src, err := os.ReadFile("../../examples/subscribers.csv")
	if err != nil {
		t.Fatal(err)
	}
	// A ninth row whose webhook is on a private address, refused without
	// --allow-private-webhooks like the demo's two webhook rows: those in
	// the second chunk of four rows, this one in the third.
	csv := strings.TrimRight(string(src), "\n") + "\nlast-row,Siste Rad,siste.rad@example.com,,http://10.0.0.1/hook,,nb,Europe/Oslo,\n"
	file := filepath.Join(dir, "chunks.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := varsel(t, "subscribers", "import", file, "--nats", svc.conn.ClientURL())
	for _, id := range []string{"styreweb-hook", "led-hook", "last-row"} {
		if err == nil || !strings.Contains(err.Error(), "subscriber "+id+", column webhook_url") {
			t.Fatalf("import: %v\n%s\nwant %s's private webhook refused", err, out, id)
		}
	}
	if e := err.Error(); !(strings.Index(e, "styreweb-hook") < strings.Index(e, "led-hook") && strings.Index(e, "led-hook") < strings.Index(e, "last-row")) {
		t.Errorf("refusals not in file order:\n%s", e)
	}
	ctx := context.Background()
	rows, bad, err := notifier.ReadSubscribersCSV(strings.NewReader(string(src)))
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	found := 0
	for _, row := range rows {
		if strings.Contains(row.WebhookURL, "127.0.0.1") {
			continue // refused too without --allow-private-webhooks
		}
		for _, a := range row.Addresses() {
			got, err := svc.conn.Subscribers.FindByAddress(ctx, a)
			if err != nil || got.ID != row.ID {
				t.Errorf("find %s's address after the import: %v, %v", row.ID, got, err)
			}
			found++
		}
	}
	if found == 0 {
		t.Fatal("no address was looked up")
	}
}
