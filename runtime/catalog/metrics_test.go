package catalog_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-run/switchboard/runtime/catalog"
)

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	writeConnector(t, dir, "alpha", "alpha", handleJS(`"A"`))
	c, err := catalog.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	rel := "alpha/global-webhooks/hook/handle.js"
	writeFile(t, dir, rel, handleJS(`"B"`))
	c.Reload()
	writeFile(t, dir, rel, "nope (\n")
	c.Reload()

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			if m.Counter != nil {
				got[name] = m.Counter.GetValue()
			} else if m.Gauge != nil {
				got[name] = m.Gauge.GetValue()
			}
		}
	}
	want := map[string]float64{
		"switchboard_connector_reloads_total/ok":     1,
		"switchboard_connector_reloads_total/failed": 1,
		"switchboard_connector_problems":             1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
