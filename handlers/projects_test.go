package handlers_test

import (
	"slices"

	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

func TestProjectListFilters(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	other, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Design", Key: "DES"}, owner)
	des, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: other.JSON201.Id, Name: "Brand", Key: "BRAND"}, owner)
	_, _ = env.Client.UpdateProjectWithResponse(bg, des.JSON201.Id, api.ProjectUpdate{Status: ptr(api.ProjectStatusArchived)}, owner)
	keys := func(p *api.ListProjectsParams) []string {
		resp, err := env.Client.ListProjectsWithResponse(bg, p, w.as(api.UserRoleViewer))
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("list projects: %v %s", err, resp.Body)
		}
		var out []string
		for _, p := range resp.JSON200.Items {
			out = append(out, p.Key)
		}
		return out
	}
	if got := keys(nil); !slices.Equal(got, []string{"PLAT", "BRAND"}) {
		t.Errorf("all projects: %v", got)
	}
	if got := keys(&api.ListProjectsParams{TeamId: &other.JSON201.Id}); !slices.Equal(got, []string{"BRAND"}) {
		t.Errorf("projects of the design team: %v", got)
	}
	if got := keys(&api.ListProjectsParams{Status: ptr(api.ProjectStatusActive)}); !slices.Equal(got, []string{"PLAT"}) {
		t.Errorf("active projects: %v", got)
	}
}
