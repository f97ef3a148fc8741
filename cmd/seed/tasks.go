package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
)

// taskJob is one batch of one project's tasks, numbered from..to inclusive: one transaction and
// one INSERT statement.
type taskJob struct {
	tenant   *tenantPlan
	project  *projectPlan
	from, to int
	seed     uint64
}

// noDate stands for a NULL due date in the date array (see queries/seed.sql).
var noDate = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// taskJobs cuts every project's tasks into batches of at most size rows.
func taskJobs(plans []tenantPlan, size int, seed uint64) []taskJob {
	var jobs []taskJob
	for i := range plans {
		t := &plans[i]
		for j := range t.projects {
			p := &t.projects[j]
			for from := 1; from <= p.tasks; from += size {
				jobs = append(jobs, taskJob{tenant: t, project: p, from: from, to: min(from+size-1, p.tasks),
					seed: seed + uint64(len(jobs))})
			}
		}
	}
	return jobs
}

// params builds the batch's rows. Parents are chosen among earlier tasks of the same batch, so
// a batch never depends on another transaction.
func (j taskJob) params(now time.Time) db.SeedTasksParams {
	rng := rand.New(rand.NewPCG(j.seed, 0x7a5c))
	n := j.to - j.from + 1
	p := db.SeedTasksParams{
		TenantID: j.tenant.id, ProjectID: j.project.id,
		Ids: make([]uuid.UUID, n), Numbers: make([]int64, n), Titles: make([]string, n),
		Descriptions: make([]string, n), Statuses: make([]string, n), Priorities: make([]int16, n),
		AssigneeIds: make([]uuid.UUID, n), Labels: make([]string, n), DueDates: make([]time.Time, n),
		ParentIds: make([]uuid.UUID, n), CreatedBys: make([]uuid.UUID, n),
		CreatedAts: make([]time.Time, n), UpdatedAts: make([]time.Time, n),
	}
	users := j.tenant.users
	team := j.tenant.teams[j.project.team]
	span := now.Sub(j.project.createdAt)
	for i := range n {
		number := j.from + i
		p.Ids[i] = newID()
		p.Numbers[i] = int64(number)
		p.Titles[i] = fmt.Sprintf("%s %s #%d", pick(rng, verbs), pick(rng, objects), 1+rng.IntN(999))
		p.Descriptions[i] = description(rng)
		p.Statuses[i] = pickWeighted(rng, statusesByWeight)
		p.Priorities[i] = int16(pickIndex(rng, prioritiesByWeight))
		if rng.IntN(10) < 7 {
			p.AssigneeIds[i] = users[pick(rng, team.members)].id
		}
		p.Labels[i] = strings.Join(sample(rng, labelNames, pickIndex(rng, []int{35, 35, 20, 10})), ",")
		p.CreatedBys[i] = users[pick(rng, team.members)].id
		// Numbers go up with time, as they do when tasks are created one by one.
		created := j.project.createdAt.Add(time.Duration(float64(span) * float64(number) / float64(j.project.tasks+1)))
		p.CreatedAts[i] = created
		p.UpdatedAts[i] = created
		if rng.IntN(2) == 0 {
			p.UpdatedAts[i] = randTime(rng, created, now)
		}
		p.DueDates[i] = noDate
		if rng.IntN(100) < 35 {
			d := created.Add(time.Duration(rng.IntN(90)+1) * 24 * time.Hour)
			p.DueDates[i] = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		}
		if i > 0 && rng.IntN(10) == 0 {
			p.ParentIds[i] = p.Ids[rng.IntN(i)]
		}
	}
	return p
}

func description(rng *rand.Rand) string {
	s := fmt.Sprintf("Problem with the %s: it %s when %s.", pick(rng, objects), pick(rng, symptoms), pick(rng, conditions))
	if f := pick(rng, followUps); f != "" {
		s += " " + f
	}
	return s
}

// pickIndex returns i with probability weights[i] / sum(weights).
func pickIndex(rng *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	r := rng.IntN(total)
	for i, w := range weights {
		if r < w {
			return i
		}
		r -= w
	}
	return len(weights) - 1
}
