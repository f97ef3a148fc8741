package database

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads the pool's statistics at scrape time, so the numbers are never stale.
type poolCollector struct {
	pool                                    *pgxpool.Pool
	total, idle, acquired, max              *prometheus.Desc
	acquires, waits, waitSeconds, destroyed *prometheus.Desc
}

// NewPoolCollector exposes pool gauges and counters for Prometheus.
func NewPoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("tasker_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:        pool,
		total:       d("connections", "Open connections."),
		idle:        d("idle_connections", "Idle connections."),
		acquired:    d("acquired_connections", "Connections in use."),
		max:         d("max_connections", "The pool's size limit."),
		acquires:    d("acquires_total", "Connections acquired from the pool."),
		waits:       d("empty_acquires_total", "Acquires that had to wait for a connection."),
		waitSeconds: d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
		destroyed:   d("destroyed_connections_total", "Connections closed for age or idleness."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.max, c.acquires, c.waits, c.waitSeconds, c.destroyed} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.waits, float64(s.EmptyAcquireCount()))
	counter(c.waitSeconds, s.AcquireDuration().Seconds())
	counter(c.destroyed, float64(s.MaxLifetimeDestroyCount()+s.MaxIdleDestroyCount()))
}
