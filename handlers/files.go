package handlers

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/tasks"
	"github.com/tasker/tasker/internal/tenancy"
)

const resourceFile = "file"

// FilesConfig is what the file endpoints need.
type FilesConfig struct {
	// Store keeps the bytes; nil answers every file operation 503.
	Store blob.Store
	// Signer signs download URLs when the store has none of its own.
	Signer files.Signer
	// MaxBytes is the largest file (413 beyond).
	MaxBytes int64
	// AllowedTypes are the sniffed media types accepted (415 otherwise).
	AllowedTypes []string
	// URLTTL is how long a signed URL works.
	URLTTL time.Duration
	// PublicURL is the scheme and host of signed URLs (https://api.example.com); empty takes
	// the request's own.
	PublicURL string
	// Now is the clock of signed URLs (time.Now when nil).
	Now func() time.Time
	// TransferTimeout bounds an upload or download once its caller is authenticated and
	// allowed; before that the server's read and write timeouts hold.
	TransferTimeout time.Duration
	// IdleTimeout cuts a transfer that moves no byte for that long (no limit when zero).
	IdleTimeout time.Duration
	// MaxUploadsPerTenant caps a tenant's uploads in progress on one instance (none when zero).
	MaxUploadsPerTenant int
}

func (c FilesConfig) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// maxFieldBytes bounds a form field before the file part (task_id).
const maxFieldBytes = 128

// UploadFile streams the file part to the blob store, then records it in one transaction that
// re-checks access and the quota; a refused or failed upload leaves no blob behind.
func (s *Server) UploadFile(ctx context.Context, req api.UploadFileRequestObject) (api.UploadFileResponseObject, error) {
	if s.files.Store == nil {
		return nil, problem.New(problem.Unavailable, "File storage is not configured on this server.")
	}
	p := principal(ctx)
	part, taskID, err := fileFormPart(req.Body)
	if err != nil {
		return nil, closing(err)
	}
	contract.EndOfHead(ctx)
	// Access and room before any byte is stored: a refusal costs the client no upload.
	type roomLeft struct {
		used, allowed int64
		plan          billing.Plan
	}
	room, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (roomLeft, error) {
		cur, err := auth.Current(ctx, q, p)
		if err != nil {
			return roomLeft{}, err
		}
		if _, err := s.mayAttach(ctx, q, cur, taskID, false); err != nil {
			return roomLeft{}, err
		}
		allowed, plan, err := s.billing.Catalog.StorageAllowed(ctx, q, s.billing.now())
		if err != nil {
			return roomLeft{}, err
		}
		used, err := q.StorageUsed(ctx)
		return roomLeft{used: used, allowed: allowed, plan: plan}, err
	})
	if err != nil {
		return nil, closing(err)
	}
	if room.used >= room.allowed {
		return nil, closing(billing.StorageExceeded(room.used, 0, room.allowed, room.plan))
	}
	// Bytes the tenant's other uploads in progress hold count as used: the problem says so.
	full := func(others int64) error { return billing.StorageExceeded(room.used, others, room.allowed, room.plan) }
	left := int64(-1)
	if room.allowed != billing.Unlimited {
		left = room.allowed - room.used
	}
	up, err := s.uploads.Begin(p.Tenant)
	if err != nil {
		return nil, closing(err)
	}
	defer up.End()
	ctx = transferContext(ctx)
	s.liftReadTimeout(ctx)

	id := newID()
	key := files.StorageKey(p.Tenant, id)
	got, err := files.Receive(ctx, s.files.Store, key, part, files.Limits{
		MaxBytes: s.files.MaxBytes, Room: left, Full: full, Allowed: s.files.AllowedTypes, Upload: up,
	}, interruptReads(ctx))
	if err != nil {
		return nil, closing(err)
	}
	name := clientFileName(part)
	out, err := s.recordFile(ctx, p, req.Body, db.CreateFileParams{
		TenantID: p.Tenant, ID: id, TaskID: taskID, UploadedBy: p.User, Filename: files.SafeName(name),
		OriginalFilename: files.DisplayName(name), ContentType: got.ContentType, Size: got.Size,
		Sha256: got.SHA256, StorageKey: key,
	})
	if err != nil {
		s.removeBlob(ctx, key)
		return nil, closing(err)
	}
	up.Stored(out.Size)
	return api.UploadFile201JSONResponse(out), nil
}

// recordFile commits the metadata of a stored blob, once the form is known to end with it.
func (s *Server) recordFile(ctx context.Context, p auth.Principal, form *multipart.Reader, params db.CreateFileParams) (api.File, error) {
	// The read-ahead has stopped; only the closing boundary may follow, not another head.
	contract.EndOfContent(ctx, 4096)
	if _, err := form.NextPart(); !errors.Is(err, io.EOF) {
		if err == nil {
			return api.File{}, problem.Fields("The file must be the last part of the form.",
				problem.FieldError{Field: "file", In: "body", Message: "no field may follow the file"})
		}
		return api.File{}, problem.Wrap(problem.Invalid, err, "The multipart body is malformed after the file.")
	}
	return writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (api.File, error) {
		project, err := s.mayAttach(ctx, tx.Q, p, params.TaskID, true)
		if err != nil {
			return api.File{}, err
		}
		params.ProjectID = project
		allowed, plan, err := s.billing.Catalog.ReserveStorage(ctx, tx.Q, p.Tenant, s.billing.now())
		if err != nil {
			return api.File{}, err
		}
		row, err := tx.Q.CreateFile(ctx, params)
		if err != nil {
			return api.File{}, err
		}
		// The insert's trigger has added the file to the tenant's total and holds that row
		// until COMMIT, so concurrent uploads are checked one after another: none overshoots.
		used, err := tx.Q.StorageUsed(ctx)
		if err != nil {
			return api.File{}, err
		}
		if used > allowed {
			return api.File{}, billing.StorageExceeded(used-params.Size, 0, allowed, plan)
		}
		out := fileToAPI(row)
		tx.Changed("file.created", tenancy.Entry{Action: "file.create", ResourceType: resourceFile, ResourceID: row.ID,
			Data: map[string]any{"filename": row.Filename, "size": row.Size, "task_id": row.TaskID}}, deref(row.ProjectID), out)
		return out, nil
	})
}

// mayAttach checks that p may attach a file to task (nil: no task, member or above) and
// returns the task's project. hold, in the upload's write transaction, keeps the task and its
// project from being deleted until COMMIT (ShareProjectForAttachment, then the task).
func (s *Server) mayAttach(ctx context.Context, q *db.Queries, p auth.Principal, task *uuid.UUID, hold bool) (*uuid.UUID, error) {
	if task == nil {
		if !p.Role.AtLeast(auth.Member) {
			return nil, problem.New(problem.Forbidden, "Viewers cannot upload files.")
		}
		return nil, nil
	}
	t, err := q.GetTask(ctx, db.GetTaskParams{TenantID: p.Tenant, ID: *task})
	if err != nil {
		return nil, tenancy.Missing(err, "task (task_id)")
	}
	if err := tasks.MayWrite(ctx, q, p, t.TeamID); err != nil {
		return nil, err
	}
	status := ""
	if hold {
		if status, err = q.ShareProjectForAttachment(ctx, t.Task.ProjectID); err != nil {
			return nil, tenancy.Missing(err, "task (task_id)")
		}
		project, err := q.ShareTaskForAttachment(ctx, *task)
		if err != nil {
			return nil, tenancy.Missing(err, "task (task_id)")
		}
		if project != t.Task.ProjectID {
			return nil, problem.New(problem.Conflict, "The task moved while the file was uploaded; retry.")
		}
	} else {
		proj, err := q.GetProject(ctx, t.Task.ProjectID)
		if err != nil {
			return nil, tenancy.Missing(err, "project")
		}
		status = proj.Status
	}
	if status == string(api.ProjectStatusArchived) {
		return nil, problem.New(problem.Conflict, "The task's project is archived; unarchive it to attach files.")
	}
	return &t.Task.ProjectID, nil
}

// fileFormPart reads the form up to its file part: an optional task_id, then file.
func fileFormPart(form *multipart.Reader) (*multipart.Part, *uuid.UUID, error) {
	var task *uuid.UUID
	for {
		part, err := form.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, nil, problem.Fields("The form has no file.", problem.FieldError{Field: "file", In: "body", Message: "is required"})
		}
		if errors.Is(err, contract.ErrHeadTooLarge) {
			return nil, nil, problem.New(problem.Invalid, "The form's fields and part headers before the file exceed %d bytes.", contract.StreamHeadBytes)
		}
		if err != nil {
			return nil, nil, problem.Wrap(problem.Invalid, err, "The body is not valid multipart/form-data.")
		}
		switch part.FormName() {
		case "file":
			return part, task, nil
		case "task_id":
			v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			id, perr := uuid.Parse(string(v))
			// Only the 36-character form: uuid.Parse also takes braces, urn:uuid: and no dashes.
			if err != nil || perr != nil || len(v) != 36 || task != nil {
				return nil, nil, problem.Fields("Invalid value for task_id.", problem.FieldError{Field: "task_id", In: "body", Message: "must be one task id (a UUID), given once"})
			}
			task = &id
		default:
			return nil, nil, problem.Fields("The form has an unknown field.", problem.FieldError{Field: part.FormName(), In: "body", Message: "is not a field of this form (task_id, file)"})
		}
	}
}

// liftReadTimeout lifts the server's read timeout from an upload whose caller is authenticated
// and allowed: from now on the connection's reads must end by FILE_TRANSFER_TIMEOUT and never
// wait FILE_IDLE_TIMEOUT for a byte. The deadline moves before every read of the connection, so
// a slow but steady client is never cut, whatever the parser above is waiting for.
func (s *Server) liftReadTimeout(ctx context.Context) {
	w := rawResponseWriter(ctx)
	if w == nil || s.files.TransferTimeout <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	d := &rollingDeadline{set: rc.SetReadDeadline, end: time.Now().Add(s.files.TransferTimeout), idle: s.files.IdleTimeout}
	d.extend()
	contract.OnBodyRead(ctx, d.extend)
}

// rollingDeadline moves a connection deadline forward as bytes move, never past end.
type rollingDeadline struct {
	set  func(time.Time) error
	end  time.Time
	idle time.Duration
	last time.Time
}

// extend sets the deadline to now plus the idle timeout (or end), at most once a second.
func (d *rollingDeadline) extend() {
	now := time.Now()
	if now.Sub(d.last) < time.Second {
		return
	}
	d.last = now
	at := d.end
	if d.idle > 0 && now.Add(d.idle).Before(at) {
		at = now.Add(d.idle)
	}
	_ = d.set(at)
}

// interruptReads makes a read of the request's body that is waiting for a stalled client return
// at once, for a refusal that must stop reading before it answers. The connection is useless
// after it: its next read fails too, and it closes without a graceful drain.
func interruptReads(ctx context.Context) func() {
	return func() {
		if w := rawResponseWriter(ctx); w != nil {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
	}
}

// clientFileName is the filename the client gave the part, as sent: Part.FileName would drop
// its directories, and the original is kept for display.
func clientFileName(part *multipart.Part) string {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return part.FileName()
	}
	return params["filename"]
}

// closing makes a refusal of an upload close the connection, so the server does not read the
// rest of a body it will not use.
func closing(err error) error {
	pe := problem.As(err)
	if pe.Kind == problem.Internal {
		return err
	}
	if pe.Header == nil {
		pe.Header = http.Header{}
	}
	pe.Header.Set("Connection", "close")
	return pe
}

// removeBlob deletes a blob whose metadata was never committed or is gone; failures are left to
// the sweep.
func (s *Server) removeBlob(ctx context.Context, key string) { s.removeBlobs(ctx, []string{key}) }

// removeBlobs deletes blobs whose metadata a committed deletion removed, at once rather than
// at the sweep, so that deleting frees the disk as it frees the quota.
func (s *Server) removeBlobs(ctx context.Context, keys []string) {
	if len(keys) == 0 || s.files.Store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, key := range keys {
		if err := s.files.Store.Delete(ctx, key); err != nil {
			s.logger.WarnContext(ctx, "remove blob; the sweep will", "request_id", reqinfo.RequestID(ctx), "key", key, "error", err.Error())
		}
	}
}

// GetFile reads a file's metadata. Reads are tenant-wide, like tasks'.
func (s *Server) GetFile(ctx context.Context, req api.GetFileRequestObject) (api.GetFileResponseObject, error) {
	f, err := s.readFile(ctx, scope(principal(ctx)), req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetFile200JSONResponse(fileToAPI(f)), nil
}

func (s *Server) readFile(ctx context.Context, sc tenancy.Scope, id uuid.UUID) (db.File, error) {
	if s.files.Store == nil {
		return db.File{}, problem.New(problem.Unavailable, "File storage is not configured on this server.")
	}
	return tenancy.ReadV(ctx, s.db, sc, func(q *db.Queries) (db.File, error) {
		r, err := q.GetFile(ctx, id)
		return r.File, notFound(err, resourceFile)
	})
}

// DeleteFile deletes a file's metadata (its bytes stop counting at once), then its blob.
func (s *Server) DeleteFile(ctx context.Context, req api.DeleteFileRequestObject) (api.DeleteFileResponseObject, error) {
	if s.files.Store == nil {
		return nil, problem.New(problem.Unavailable, "File storage is not configured on this server.")
	}
	key, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (string, error) {
		r, err := tx.Q.GetFile(ctx, req.Id)
		if err != nil {
			return "", notFound(err, resourceFile)
		}
		if err := mayDeleteFile(ctx, tx.Q, p, r); err != nil {
			return "", err
		}
		row, err := tx.Q.DeleteFile(ctx, req.Id)
		if err != nil {
			return "", notFound(err, resourceFile)
		}
		tx.Changed("file.deleted", tenancy.Entry{Action: "file.delete", ResourceType: resourceFile, ResourceID: row.ID,
			Data: map[string]any{"filename": row.Filename, "size": row.Size}}, deref(row.ProjectID), fileToAPI(row))
		return row.StorageKey, nil
	})
	if err != nil {
		return nil, err
	}
	s.removeBlob(ctx, key)
	return api.DeleteFile204Response{}, nil
}

// mayDeleteFile: who may write tasks in the file's project, or for a file without a task its
// uploader and admins.
func mayDeleteFile(ctx context.Context, q *db.Queries, p auth.Principal, r db.GetFileRow) error {
	if r.TeamID != nil {
		return tasks.MayWrite(ctx, q, p, *r.TeamID)
	}
	if p.Role.AtLeast(auth.Admin) || (p.Role.AtLeast(auth.Member) && r.File.UploadedBy == p.User) {
		return nil
	}
	return problem.New(problem.Forbidden, "Only its uploader or an admin may delete a file that is not attached to a task.")
}

// ListTaskFiles lists a task's attachments, oldest first.
func (s *Server) ListTaskFiles(ctx context.Context, req api.ListTaskFilesRequestObject) (api.ListTaskFilesResponseObject, error) {
	const list = "task-files"
	p := principal(ctx)
	afterT, afterID, err := timeCursorAt(list, req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.File, error) {
		t, err := loadTask(ctx, q, p.Tenant, req.Id)
		if err != nil {
			return nil, err
		}
		return q.ListTaskFiles(ctx, db.ListTaskFilesParams{TenantID: p.Tenant, TaskID: &t.ID,
			AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit)})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(f db.File) string { return timeNext(list)(f.CreatedAt, f.ID) })
	out := api.FileList{Items: make([]api.File, len(rows)), NextCursor: nullableString(next)}
	for i, f := range rows {
		out.Items[i] = fileToAPI(f)
	}
	return api.ListTaskFiles200JSONResponse(out), nil
}

// GetFileContent streams a file to a signed-in reader.
func (s *Server) GetFileContent(ctx context.Context, req api.GetFileContentRequestObject) (api.GetFileContentResponseObject, error) {
	f, err := s.readFile(ctx, scope(principal(ctx)), req.Id)
	if err != nil {
		return nil, err
	}
	return fileContent{s: s, ctx: transferContext(ctx), r: rawRequest(ctx), f: f}, nil
}

// DownloadSignedFile streams a file to whoever holds a valid signed URL for it. A bad, expired
// or foreign signature is a 404, like a missing file, so a URL tells nothing it does not open.
func (s *Server) DownloadSignedFile(ctx context.Context, req api.DownloadSignedFileRequestObject) (api.DownloadSignedFileResponseObject, error) {
	gone := problem.New(problem.NotFound, "No such file, or the link has expired.")
	if !s.files.Signer.Verify(req.Params.Tenant, req.Id, req.Params.Expires, req.Params.Signature, s.files.now()) {
		return nil, gone
	}
	f, err := s.readFile(ctx, tenancy.Scope{Tenant: req.Params.Tenant}, req.Id)
	if problem.Is(err, problem.NotFound) {
		return nil, gone
	}
	if err != nil {
		return nil, err
	}
	return fileContent{s: s, ctx: transferContext(ctx), r: rawRequest(ctx), f: f}, nil
}

// GetFileURL hands out a short-lived URL that downloads the file without a token: the store's
// own (S3 presigned) or one of ours signed with HMAC.
func (s *Server) GetFileURL(ctx context.Context, req api.GetFileURLRequestObject) (api.GetFileURLResponseObject, error) {
	p := principal(ctx)
	f, err := s.readFile(ctx, scope(p), req.Id)
	if err != nil {
		return nil, err
	}
	// Whole seconds, so the URL's expiry and the one reported agree.
	expires := s.files.now().Add(s.files.URLTTL).Truncate(time.Second)
	link, ok, err := s.files.Store.PresignGet(ctx, f.StorageKey, s.files.URLTTL, f.ContentType, files.ContentDisposition(f.Filename))
	if err != nil {
		return nil, err
	}
	if !ok {
		q := url.Values{}
		q.Set("tenant", p.Tenant.String())
		q.Set("expires", strconv.FormatInt(expires.Unix(), 10))
		q.Set("signature", s.files.Signer.Sign(p.Tenant, f.ID, expires))
		link = s.publicURL(rawRequest(ctx)) + "/v1/files/" + f.ID.String() + "/download?" + q.Encode()
	}
	return api.GetFileURL200JSONResponse(api.FileURL{Url: link, ExpiresAt: expires.UTC()}), nil
}

// publicURL is the scheme and host clients reach this server at.
func (s *Server) publicURL(r *http.Request) string {
	if s.files.PublicURL != "" {
		return s.files.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func fileToAPI(f db.File) api.File {
	out := api.File{
		Id: f.ID, Filename: f.Filename, OriginalFilename: f.OriginalFilename, ContentType: f.ContentType,
		Size: f.Size, Sha256: hex.EncodeToString(f.Sha256), UploadedBy: f.UploadedBy, CreatedAt: f.CreatedAt,
	}
	out.TaskId.SetNull()
	out.ProjectId.SetNull()
	if f.TaskID != nil {
		out.TaskId.Set(*f.TaskID)
	}
	if f.ProjectID != nil {
		out.ProjectId.Set(*f.ProjectID)
	}
	return out
}
