package notifier

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnknownComponentLabelsBounded: past MaxUnknownComponentLabels ids,
// new ones are counted under "other"; an id already labelled keeps its
// label, and an id that cannot name a component never gets one.
func TestUnknownComponentLabelsBounded(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	for i := range MaxUnknownComponentLabels + 20 {
		m.CountUnknownComponent(fmt.Sprintf("c%03d", i))
	}
	m.CountUnknownComponent("c000")
	m.CountUnknownComponent("not an id")
	if n := testutil.CollectAndCount(m.UnknownComponents); n != MaxUnknownComponentLabels+1 {
		t.Errorf("%d series, want %d ids and other", n, MaxUnknownComponentLabels+1)
	}
	if got := testutil.ToFloat64(m.UnknownComponents.WithLabelValues("c000")); got != 2 {
		t.Errorf("c000 = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.UnknownComponents.WithLabelValues("other")); got != 21 {
		t.Errorf("other = %v, want 21", got)
	}
}
