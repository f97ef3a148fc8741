package ratelimit

import (
	"testing"
	"time"
)

func TestBurstThenRefill(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(6, 3) // one every 10 s, three at once
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("k")
	if ok || wait <= 0 || wait > 10*time.Second {
		t.Fatalf("fourth event: ok=%v wait=%v; want refused with a wait up to 10s", ok, wait)
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(wait)
	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("refused after waiting the advertised time")
	}
}

func TestIdleBucketsAreForgotten(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(60, 5)
	l.now = func() time.Time { return now }
	for i := 0; i < 100; i++ {
		l.Allow(string(rune('a'+i%26)) + string(rune(i)))
	}
	now = now.Add(10 * time.Minute)
	l.Allow("fresh")
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after all went idle; want 1", len(l.buckets))
	}
}

func TestSpendCountsEventsAfterTheFactAndUntilPeeks(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(6, 3) // one every 10 s, three at once
	l.now = func() time.Time { return now }
	near := func(got, want time.Duration) bool {
		return got >= want-time.Millisecond && got <= want+time.Millisecond
	}

	if d1, d3 := l.Until("k", 1), l.Until("k", 3); d1 != 0 || d3 != 0 {
		t.Fatalf("an unseen key: Until(1)=%v Until(3)=%v; want a full bucket", d1, d3)
	}
	if len(l.buckets) != 0 {
		t.Fatal("Until created a bucket")
	}
	l.Spend("k")
	if d1, d3 := l.Until("k", 1), l.Until("k", 3); d1 != 0 || !near(d3, 10*time.Second) {
		t.Fatalf("after one event: Until(1)=%v Until(3)=%v; want 0 and 10s", d1, d3)
	}
	l.Spend("k")
	l.Spend("k")
	if d := l.Until("k", 1); !near(d, 10*time.Second) {
		t.Fatalf("after the burst: Until(1)=%v; want 10s", d)
	}
	// Spent with nothing left: the bucket goes into debt, so the event still costs its time.
	l.Spend("k")
	if d1, d3 := l.Until("k", 1), l.Until("k", 3); !near(d1, 20*time.Second) || !near(d3, 40*time.Second) {
		t.Fatalf("in debt: Until(1)=%v Until(3)=%v; want 20s and 40s", d1, d3)
	}
	if d := l.Until("k", 100); !near(d, 40*time.Second) {
		t.Fatalf("Until(100)=%v; want it capped at the burst, 40s", d)
	}
	if ok, _ := l.Allow("k"); ok {
		t.Fatal("Allow let an event through a bucket in debt")
	}
	now = now.Add(20 * time.Second)
	if d := l.Until("k", 1); d != 0 {
		t.Fatalf("after paying the debt: Until(1)=%v; want 0", d)
	}
	if l.Until("other", 3) != 0 {
		t.Fatal("another key shares the bucket")
	}
}

func TestBucketsInDebtAreNotForgotten(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(6, 3)
	l.now = func() time.Time { return now }
	for range 30 { // 27 events of debt: 280 s until the next
		l.Spend("k")
	}
	now = now.Add(3 * time.Minute) // long past a full refill of an undebted bucket
	l.Allow("fresh")               // sweeps
	if d := l.Until("k", 1); d <= 0 {
		t.Fatalf("a bucket still in debt was forgotten: Until(1)=%v", d)
	}
}
