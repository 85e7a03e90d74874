package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSubscriberExportThenRemovalLeavesNothing: a person asks for their
// data (export), then to be forgotten (remove); afterwards no file of the
// store holds their address, and their deliveries are still counted.
func TestSubscriberExportThenRemovalLeavesNothing(t *testing.T) {
	svc, dir := testService(t, nil)
	nats := svc.conn.ClientURL()
	if out, err := varsel(t, "subscribers", "import", "../../examples/subscribers.csv", "--nats", nats, "--allow-private-webhooks"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := varsel(t, "publish", "../../examples/styreweb/01-2019-09-16-1100-opened.json", "--nats", nats); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	var export struct {
		Subscriber struct {
			Email string `json:"email"`
		} `json:"subscriber"`
		Deliveries []struct {
			Channel string `json:"channel"`
			Status  string `json:"status"`
		} `json:"deliveries"`
	}
	waitFor(t, "kari's deliveries in the export", func() bool {
		out, err := varsel(t, "subscribers", "export", "kari-nordmann", "--nats", nats)
		if err != nil {
			t.Fatalf("export: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &export); err != nil {
			t.Fatalf("export is not JSON: %v\n%s", err, out)
		}
		return len(export.Deliveries) >= 2
	})
	if export.Subscriber.Email != "kari.nordmann@example.com" {
		t.Errorf("export names %q", export.Subscriber.Email)
	}
	store := filepath.Join(dir, "jetstream")
	if !dirHolds(store, "kari.nordmann@example.com") {
		t.Fatal("the address is in no store file before the removal: the search proves nothing")
	}
	if out, err := varsel(t, "subscribers", "remove", "kari-nordmann", "--nats", nats); err != nil || !strings.Contains(out, "removed kari-nordmann") {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if out, err := varsel(t, "subscribers", "export", "kari-nordmann", "--nats", nats); err == nil {
		t.Fatalf("export after the removal still answers:\n%s", out)
	}
	if dirHolds(store, "kari.nordmann@example.com") {
		t.Error("after the removal a store file still holds the address")
	}
	sum, err := varsel(t, "deliveries", "list", "--event", "styreweb-2019-09-16-1100", "--nats", nats)
	if err != nil || strings.Contains(sum, "kari-nordmann") || !strings.Contains(sum, "removed-") {
		t.Errorf("after the removal the delivery list reads (%v):\n%s", err, sum)
	}
}

func dirHolds(dir, s string) bool {
	found := false
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(s)) {
				found = true
			}
		}
		return nil
	})
	return found
}
