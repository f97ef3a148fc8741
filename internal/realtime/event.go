package realtime

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
)

// Event is one committed event of a tenant's stream.
type Event struct {
	Tenant       uuid.UUID
	ID           int64
	At           time.Time
	Actor        *uuid.UUID
	Type         string
	ResourceType string
	ResourceID   uuid.UUID
	ProjectID    *uuid.UUID
	Payload      []byte

	// frames caches the encoded message per topic, and parsed the payload fields access rules
	// read: an event goes to every socket of its tenant, from a goroutine per core, and must
	// cost each socket nothing proportional to its size. shared holds the frames of the topics
	// that can show the event, encoded before the fan-out (prepare) and only read during it,
	// so the goroutines serving sockets do not contend for mu.
	shared map[string][]byte
	mu     sync.Mutex
	frames map[string][]byte
	parse  sync.Once
	parsed payloadFields
}

func eventFromRow(tenant uuid.UUID, r db.ListEventsAfterRow) *Event {
	return &Event{
		Tenant: tenant, ID: r.ID, At: r.CreatedAt, Actor: r.ActorUserID, Type: r.Type,
		ResourceType: r.ResourceType, ResourceID: r.ResourceID, ProjectID: r.ProjectID, Payload: r.Payload,
	}
}

// prepare parses the payload's fields and encodes the frames of the topics that can show e,
// before the fan-out starts.
func (e *Event) prepare() {
	e.fields()
	topics := []string{topicTenant, topicTaskPrefix + e.ResourceID.String()}
	if e.ProjectID != nil {
		topics = append(topics, topicProjectPrefix+e.ProjectID.String())
	}
	if e.ResourceType == resourceTypeProject {
		topics = append(topics, topicProjectPrefix+e.ResourceID.String())
	}
	shared := make(map[string][]byte, len(topics))
	for _, t := range topics {
		shared[t] = e.encode(t)
	}
	e.shared = shared
}

// frame is the event's message on topic, encoded once per topic however many sockets get it.
func (e *Event) frame(topic string) []byte {
	if f, ok := e.shared[topic]; ok {
		return f
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.frames[topic]; ok {
		return f
	}
	f := e.encode(topic)
	if e.frames == nil {
		e.frames = make(map[string][]byte, 2)
	}
	e.frames[topic] = f
	return f
}

// payloadFields are the fields of event payloads that access decisions read.
type payloadFields struct {
	UserID uuid.UUID `json:"user_id"`
	TeamID uuid.UUID `json:"team_id"`
	Role   string    `json:"role"`
	Status string    `json:"status"`
}

func (e *Event) encode(topic string) []byte {
	return textFrame(eventMessage{
		Type: "event", ID: e.ID, Topic: topic, Event: e.Type, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, ProjectID: e.ProjectID, Data: json.RawMessage(e.Payload), Actor: e.Actor, At: e.At.UTC(),
	})
}

func (e *Event) fields() payloadFields {
	e.parse.Do(func() {
		_ = json.Unmarshal(e.Payload, &e.parsed) // payloads are our own JSON; a missing field stays zero
	})
	return e.parsed
}

// visible reports whether a subscriber acting as p receives e on the topic t whose project is
// project (for task topics; the project itself for project topics).
func visible(e *Event, t topic, p auth.Principal) bool {
	switch t.kind {
	case topicTenant:
		switch {
		case e.Type == eventSessionRevoked:
			return p.Role.AtLeast(auth.Admin) || e.fields().UserID == p.User
		case e.Type == eventAPIKeyRevoked, strings.HasPrefix(e.Type, eventTypePrefixBill):
			return p.Role.AtLeast(auth.Admin)
		default:
			return strings.HasPrefix(e.Type, eventTypePrefixUser) || strings.HasPrefix(e.Type, eventTypePrefixTeam) ||
				strings.HasPrefix(e.Type, eventTypePrefixProj)
		}
	case resourceTypeProject:
		if e.ResourceType == resourceTypeProject {
			return e.ResourceID == t.id
		}
		return e.ProjectID != nil && *e.ProjectID == t.id && e.ResourceType != resourceTypeProject
	default:
		return e.ResourceType == resourceTypeTask && e.ResourceID == t.id
	}
}
