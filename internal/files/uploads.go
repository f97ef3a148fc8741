package files

import (
	"net/http"
	"sync"

	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/problem"
)

// Uploads counts each tenant's uploads in progress on this instance and the bytes they have
// received, so that a tenant cannot hold more than max uploads open at once, and an upload's
// room leaves out what the tenant's other uploads are about to store: stalled uploads cannot
// fill the disk past the quota (the committed count, checked in the transaction, stays the
// exact bound).
type Uploads struct {
	mu      sync.Mutex
	max     int
	tenants map[uuid.UUID]*tenantUploads
}

type tenantUploads struct {
	n     int
	bytes int64
	// stored counts the bytes uploads here have committed while others were in progress.
	stored int64
}

// NewUploads returns a tracker allowing max uploads per tenant at once (no cap when max <= 0).
func NewUploads(max int) *Uploads {
	return &Uploads{max: max, tenants: map[uuid.UUID]*tenantUploads{}}
}

// Upload is one upload in progress.
type Upload struct {
	u    *Uploads
	t    *tenantUploads
	key  uuid.UUID
	mine int64
	// storedAtStart is the tenant's stored count when this upload began: what was stored since
	// is no longer in the room this upload was given.
	storedAtStart int64
}

// Begin registers an upload of tenant, or refuses it with 429 when the tenant already runs
// max of them here.
func (u *Uploads) Begin(tenant uuid.UUID) (*Upload, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.tenants[tenant]
	if t == nil {
		t = &tenantUploads{}
		u.tenants[tenant] = t
	}
	if u.max > 0 && t.n >= u.max {
		pe := problem.New(problem.RateLimited, "This tenant already has %d uploads in progress; retry when one has finished.", u.max)
		pe.Header = http.Header{"Retry-After": {"5"}}
		return nil, pe
	}
	t.n++
	return &Upload{u: u, t: t, key: tenant, storedAtStart: t.stored}, nil
}

// add records n more bytes received and returns what else takes from this upload's room: the
// bytes the tenant's other uploads hold, and those stored since this one began.
func (up *Upload) add(n int64) (others int64) {
	up.u.mu.Lock()
	defer up.u.mu.Unlock()
	up.mine += n
	up.t.bytes += n
	return up.t.bytes - up.mine + up.t.stored - up.storedAtStart
}

// Stored records that the upload committed size bytes, before End.
func (up *Upload) Stored(size int64) {
	up.u.mu.Lock()
	defer up.u.mu.Unlock()
	up.t.stored += size
}

// End unregisters the upload, stored or not.
func (up *Upload) End() {
	up.u.mu.Lock()
	defer up.u.mu.Unlock()
	up.t.n--
	up.t.bytes -= up.mine
	if up.t.n == 0 {
		delete(up.u.tenants, up.key)
	}
}
