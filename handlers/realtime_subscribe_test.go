package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/realtime"
)

// Each refused subscription is answered with an error naming the topic, and the socket goes on
// (the next subscription in the table is answered on it) without receiving the refused topic.
func TestRealtimeRefusedSubscriptionsNameTheTopic(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, RealtimeConfig: realtime.Config{MaxSubscriptions: 3}})
	f := newRTFixture(t, env)
	task := f.createTask(t, "mine")
	// Another tenant's project and task.
	g := newRTFixture(t, env)
	foreign := g.createTask(t, "theirs")
	// A member of the tenant who is not in the project's team.
	outsider := f.user(t, "outsider", "member", false)

	ownerSock := env.MustDial(t, f.acct.Tokens.AccessToken)
	outsiderSock := env.MustDial(t, outsider.tokens.AccessToken)
	outsiderSock.Subscribe("tenant", nil)
	upper := "project:" + strings.ToUpper(f.project.Id.String())
	cases := []struct {
		name  string
		sock  *apitest.Socket
		topic string
		code  string
	}{
		{"another tenant's project", ownerSock, projectTopic(g.project.Id), realtime.ErrTopicNotFound},
		{"another tenant's task", ownerSock, taskTopic(foreign.Id), realtime.ErrTopicNotFound},
		{"no such project", ownerSock, projectTopic(uuid.New()), realtime.ErrTopicNotFound},
		{"no such task", ownerSock, taskTopic(uuid.New()), realtime.ErrTopicNotFound},
		{"project of a team one is not in", outsiderSock, projectTopic(f.project.Id), realtime.ErrTopicForbidden},
		{"task of a team one is not in", outsiderSock, taskTopic(task.Id), realtime.ErrTopicForbidden},
		{"no id", ownerSock, "project:", realtime.ErrInvalidTopic},
		{"not a uuid", ownerSock, "project:not-a-uuid", realtime.ErrInvalidTopic},
		{"uppercase uuid", ownerSock, upper, realtime.ErrInvalidTopic},
		{"unknown kind", ownerSock, "foo", realtime.ErrInvalidTopic},
		{"unknown kind with an id", ownerSock, "team:" + f.team.Id.String(), realtime.ErrInvalidTopic},
		{"tenant with a suffix", ownerSock, "tenant:", realtime.ErrInvalidTopic},
	}
	for _, c := range cases {
		c.sock.Send(map[string]any{"type": "subscribe", "topic": c.topic})
		m := c.sock.Next()
		if m.Type() != "error" || m.Str("code") != c.code || m.Str("topic") != c.topic || m.Str("message") == "" {
			t.Errorf("%s: subscribe %q got %v, want error %s naming the topic", c.name, c.topic, m, c.code)
		}
	}

	// The outsider received none of the project they were refused: the next message after a
	// task in it and a team rename is the team's event.
	f.createTask(t, "unseen")
	name := "Renamed"
	tu, err := env.Client.UpdateTeamWithResponse(context.Background(), f.team.Id, api.TeamUpdate{Name: &name}, f.owner)
	mustStatus(t, "update team", err, tu.StatusCode(), http.StatusOK, tu.Body)
	expectEvent(t, outsiderSock, "team.updated", "tenant", f.team.Id)

	// too_many_subscriptions beyond MaxSubscriptions (3); subscribing again to a held topic
	// is no new subscription, and an unsubscribe frees a place.
	ownerSock.Subscribe("tenant", nil)
	ownerSock.Subscribe(projectTopic(f.project.Id), nil)
	ownerSock.Subscribe(taskTopic(task.Id), nil)
	other := f.createTask(t, "other")
	// The task.created reaches the project topic before the refusal below is answered.
	expectEvent(t, ownerSock, "task.created", projectTopic(f.project.Id), other.Id)
	ownerSock.Send(map[string]any{"type": "subscribe", "topic": taskTopic(other.Id)})
	ownerSock.ExpectError(realtime.ErrTooManySubs, taskTopic(other.Id))
	ownerSock.Subscribe("tenant", nil)
	ownerSock.Send(map[string]any{"type": "unsubscribe", "topic": "tenant"})
	if m := ownerSock.Expect("unsubscribed"); m.Str("topic") != "tenant" {
		t.Fatalf("unsubscribe: got %v", m)
	}
	ownerSock.Subscribe(taskTopic(other.Id), nil)

	// An error about a long topic names only its start: it must not echo a client's message
	// back many times its size (it named it twice, and a "<" comes back as six bytes).
	long := strings.Repeat("x", 3000)
	ownerSock.Send(map[string]any{"type": "unsubscribe", "topic": long})
	if m := ownerSock.Expect("error"); m.Str("code") != "not_subscribed" || m.Str("topic") != long[:64] || strings.Contains(m.Str("message"), long[:65]) {
		t.Fatalf("unsubscribe from a 3000-character topic: got %.200v, want not_subscribed naming its first 64 characters only", m)
	}
	// Cut on a character's boundary: 63 bytes of "x" and a 4-byte character come back as the 63.
	ownerSock.Send(map[string]any{"type": "unsubscribe", "topic": strings.Repeat("x", 63) + "😀"})
	if m := ownerSock.Expect("error"); m.Str("topic") != strings.Repeat("x", 63) {
		t.Fatalf("unsubscribe from a topic whose 64th byte is inside a character: got topic %q", m.Str("topic"))
	}
}

// Subscriptions sent back to back, without waiting for each answer, to topics with history:
// each is answered "subscribed" and none replays anything from before it (no since), so the
// first message after them all is the answer to a ping.
func TestRealtimePipelinedSubscriptionsReplayNothingFromBefore(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	topics := []string{"tenant", projectTopic(f.project.Id)}
	for i := range 6 {
		topics = append(topics, taskTopic(f.createTask(t, "history "+string(rune('a'+i))).Id))
	}
	for attempt := range 10 {
		// Each socket stays open until the test ends: closed at once, it would cancel the
		// catch-ups still running, which costs the pool their connections (pgx's async close of
		// a connection cancelled mid-pipeline can take its full 15 s, and pool.Close waits).
		sock := env.MustDial(t, f.acct.Tokens.AccessToken)
		for _, topic := range topics {
			sock.Send(map[string]any{"type": "subscribe", "topic": topic})
		}
		sock.Send(map[string]any{"type": "ping"})
		subscribed := map[string]bool{}
		for range topics {
			m := sock.Next()
			if m.Type() != "subscribed" {
				t.Fatalf("attempt %d: got %v, want only subscribed messages (%d so far)", attempt, m, len(subscribed))
			}
			subscribed[m.Str("topic")] = true
		}
		if m := sock.Next(); m.Type() != "pong" || len(subscribed) != len(topics) {
			t.Fatalf("attempt %d: got %v after subscribing to %v, want pong", attempt, m, subscribed)
		}
	}
}
