// Package realtime serves the WebSocket stream of events: it relays the outbox (the events table)
// from PostgreSQL to every server instance, fans each event out to the sockets subscribed to its
// topics, replays what a reconnecting client missed, and applies revocations to open sockets
// and to the instance's verified-token cache. openapi/asyncapi.yaml documents the protocol.
package realtime

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// Subprotocol is the protocol a client offers, and the server selects, in Sec-WebSocket-Protocol.
// Browsers, which cannot set headers on a WebSocket, also offer "bearer.<token>" beside it.
const Subprotocol = "tasker.v1"

// BearerSubprotocolPrefix prefixes the access token or API key offered as a subprotocol.
const BearerSubprotocolPrefix = "bearer."

// Close codes the server ends a connection with, besides the RFC 6455 ones coder/websocket sends
// for frames over the size limit (1009) and binary frames (1003).
const (
	CloseGoingAway      = websocket.StatusGoingAway       // 1001: the server is shutting down
	ClosePolicy         = websocket.StatusPolicyViolation // 1008: too many messages a second
	CloseTokenExpired   = websocket.StatusCode(4001)      // the credential expired without renewal
	CloseAccessRevoked  = websocket.StatusCode(4003)      // session or key revoked, user deactivated
	CloseSlowConsumer   = websocket.StatusCode(4008)      // the send queue overflowed
	CloseInternal       = websocket.StatusInternalError   // 1011
	closeUnsupportedMsg = websocket.StatusUnsupportedData // 1003: a binary frame
)

// Error codes of error messages.
const (
	ErrBadMessage       = "bad_message"
	ErrInvalidTopic     = "invalid_topic"
	ErrTopicNotFound    = "topic_not_found"
	ErrTopicForbidden   = "topic_forbidden"
	ErrTooManySubs      = "too_many_subscriptions"
	ErrSinceExpired     = "since_expired"
	ErrSinceInvalid     = "since_invalid"
	ErrAccessRevoked    = "access_revoked"
	ErrAuthFailed       = "auth_failed"
	ErrInternal         = "internal_error"
	errNotSubscribed    = "not_subscribed"
	topicTenant         = "tenant"
	topicProjectPrefix  = "project:"
	topicTaskPrefix     = "task:"
	maxTopicLen         = 64
	resourceTypeTask    = "task"
	resourceTypeProject = "project"
	eventSessionRevoked = "session.revoked"
	eventAPIKeyRevoked  = "api_key.revoked"
	eventUserUpdated    = "user.updated"
	eventMemberRemoved  = "team.member_removed"
	eventTeamDeleted    = "team.deleted"
	eventProjectUpdated = "project.updated"
	eventTypePrefixUser = "user."
	eventTypePrefixTeam = "team."
	eventTypePrefixProj = "project."
	eventTypePrefixBill = "billing."
	statusActive        = "active"
	maxReplayPage       = 20        // events read per replay query: a page's payloads (up to a few hundred KB each) stay in memory while it is sent
	replayChunk         = 256 << 10 // bytes of a replay written before waiting for the client to take them
	maxPendingPerSub    = 1024
	defaultAuthCatchUp  = time.Minute
)

// clientMessage is any message a client sends; Type says which fields matter.
type clientMessage struct {
	Type  string `json:"type"`
	Topic string `json:"topic,omitempty"`
	Since *int64 `json:"since,omitempty"`
	Token string `json:"token,omitempty"`
}

type subscribedMessage struct {
	Type   string `json:"type"`
	Topic  string `json:"topic"`
	LastID int64  `json:"last_id"`
}

type topicMessage struct {
	Type  string `json:"type"`
	Topic string `json:"topic"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Topic   string `json:"topic,omitempty"`
}

type authenticatedMessage struct {
	Type      string     `json:"type"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// eventMessage is an event as a client receives it on one topic.
type eventMessage struct {
	Type         string          `json:"type"`
	ID           int64           `json:"id"`
	Topic        string          `json:"topic"`
	Event        string          `json:"event"`
	ResourceType string          `json:"resource_type"`
	ResourceID   uuid.UUID       `json:"resource_id"`
	ProjectID    *uuid.UUID      `json:"project_id"`
	Data         json.RawMessage `json:"data"`
	Actor        *uuid.UUID      `json:"actor"`
	At           time.Time       `json:"at"`
}

var pongFrame = textFrame(map[string]string{"type": "pong"})

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// topic is a parsed subscription topic.
type topic struct {
	kind string // topicTenant, "project" or "task"
	id   uuid.UUID
}

func (t topic) String() string {
	switch t.kind {
	case topicTenant:
		return topicTenant
	case resourceTypeProject:
		return topicProjectPrefix + t.id.String()
	default:
		return topicTaskPrefix + t.id.String()
	}
}

// parseTopic reads "tenant", "project:<uuid>" or "task:<uuid>"; the uuid must be in its
// canonical lowercase form, so that one topic has one name.
func parseTopic(s string) (topic, bool) {
	if s == topicTenant {
		return topic{kind: topicTenant}, true
	}
	kind, id, ok := strings.Cut(s, ":")
	if !ok || (kind != resourceTypeProject && kind != resourceTypeTask) {
		return topic{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id {
		return topic{}, false
	}
	return topic{kind: kind, id: u}, true
}
