package catalog

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics adds the catalog's metrics to reg:
//
//   - switchboard_connector_reloads_total{result="ok"|"failed"}: connector directories
//     loaded again after a change (new ones included);
//   - switchboard_connector_problems: problems listed now, so that an edit left broken (the
//     last good version still serving) can be alerted on.
//
// Call it before Run.
func (c *Catalog) RegisterMetrics(reg prometheus.Registerer) error {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_connector_reloads_total",
		Help: "Connector directories loaded again after a change on disk, by result.",
	}, []string{"result"})
	problems := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_connector_problems",
		Help: "Problems found by the latest load of each connector directory; a broken edit keeps its connector's last good version serving.",
	}, func() float64 { return float64(len(c.cur.Load().problems)) })
	for _, col := range []prometheus.Collector{reloads, problems} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	c.reloads = reloads
	return nil
}
