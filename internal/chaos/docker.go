package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// docker is a minimal client of the Docker Engine API over its unix
// socket: what make chaos-compose needs to find a compose project's
// containers and to kill, pause, start and disconnect them. No docker CLI
// is needed (the chaos container is FROM scratch).
type docker struct {
	hc *http.Client
}

func newDocker(socket string) *docker {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &docker{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do calls the API; a status of 300 or more (but 304, "already so") is
// an error carrying the engine's message. out, if set, gets the JSON body.
func (d *docker) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://docker"+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("docker %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("docker %s %s: %s: %s", method, path, resp.Status, e.Message)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// container is what chaos needs of one container of the project.
type container struct {
	ID       string
	Service  string // com.docker.compose.service
	Number   string // com.docker.compose.container-number
	Hostname string
	State    string // running, paused, exited, ...
}

// containers lists every container (running or not) of compose project.
func (d *docker) containers(project string) ([]container, error) {
	f, _ := json.Marshal(map[string][]string{"label": {"com.docker.compose.project=" + project}})
	var list []struct {
		ID     string            `json:"Id"`
		Labels map[string]string `json:"Labels"`
		State  string            `json:"State"`
	}
	if err := d.do(http.MethodGet, "/containers/json?all=1&filters="+url.QueryEscape(string(f)), nil, &list); err != nil {
		return nil, err
	}
	var out []container
	for _, c := range list {
		var in struct {
			Config struct {
				Hostname string `json:"Hostname"`
			} `json:"Config"`
		}
		if err := d.do(http.MethodGet, "/containers/"+c.ID+"/json", nil, &in); err != nil {
			return nil, err
		}
		ct := container{ID: c.ID, Service: c.Labels["com.docker.compose.service"], Number: c.Labels["com.docker.compose.container-number"],
			Hostname: in.Config.Hostname, State: c.State}
		out = append(out, ct)
	}
	return out, nil
}

// state returns a container's state (running, paused, exited, ...).
func (d *docker) state(id string) (string, error) {
	var in struct {
		State struct {
			Status string `json:"Status"`
		} `json:"State"`
	}
	if err := d.do(http.MethodGet, "/containers/"+id+"/json", nil, &in); err != nil {
		return "", err
	}
	return in.State.Status, nil
}

func (d *docker) kill(id string) error {
	return d.do(http.MethodPost, "/containers/"+id+"/kill", nil, nil)
}
func (d *docker) pause(id string) error {
	return d.do(http.MethodPost, "/containers/"+id+"/pause", nil, nil)
}
func (d *docker) unpause(id string) error {
	return d.do(http.MethodPost, "/containers/"+id+"/unpause", nil, nil)
}
func (d *docker) start(id string) error {
	return d.do(http.MethodPost, "/containers/"+id+"/start", nil, nil)
}

// stop is a graceful stop: SIGTERM, SIGKILL after grace.
func (d *docker) stop(id string, grace time.Duration) error {
	return d.do(http.MethodPost, fmt.Sprintf("/containers/%s/stop?t=%d", id, int(grace.Seconds())), nil, nil)
}

// disconnect takes container id off network (force: also when it is
// not running).
func (d *docker) disconnect(network, id string) error {
	b, _ := json.Marshal(map[string]any{"Container": id, "Force": true})
	return d.do(http.MethodPost, "/networks/"+url.PathEscape(network)+"/disconnect", strings.NewReader(string(b)), nil)
}

// connect puts container id back on network, with aliases (its service
// name and hostname, as compose gave it).
func (d *docker) connect(network, id string, aliases ...string) error {
	b, _ := json.Marshal(map[string]any{"Container": id, "EndpointConfig": map[string]any{"Aliases": aliases}})
	return d.do(http.MethodPost, "/networks/"+url.PathEscape(network)+"/connect", strings.NewReader(string(b)), nil)
}
