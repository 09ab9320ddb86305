package console_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/strata-registry/strata/internal/data"
	"github.com/strata-registry/strata/internal/meta"
	"github.com/strata-registry/strata/internal/sdktest"
	"github.com/strata-registry/strata/internal/session"
	"github.com/strata-registry/strata/internal/testcluster"
	"github.com/strata-registry/strata/pkg/client"
	"github.com/strata-registry/strata/pkg/client/discovery"
	"github.com/strata-registry/strata/pkg/client/identity"
)

// xss is a data ID and a zone that would run script if the page put
// data into HTML; the console must show it as text.
const xss = `<img src=x onerror=alert(1)>`

// chromium returns the path of Debian's chromium. Without it the test
// is skipped, saying so, so `make test` passes on a machine without a
// browser; .ci/run installs chromium and sets STRATA_REQUIRE_CHROMIUM=1,
// under which a missing browser fails the test instead.
func chromium(t *testing.T) string {
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	const how = "the console's browser test needs headless Chromium: install Debian's chromium (apt-get install -y chromium; .ci/run installs it)"
	if os.Getenv("STRATA_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(how)
	}
	t.Skip("SKIPPED, no chromium on PATH or at /usr/bin/chromium: " + how)
	return ""
}

// spki is the base64 SHA-256 of the public key in the certificate file,
// for Chromium's --ignore-certificate-errors-spki-list: the browser
// trusts exactly that node's key, nothing else.
func spki(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// browser is one headless Chromium tab on the console.
type browser struct {
	ctx   context.Context
	start time.Time
	mu    sync.Mutex
	// problems are what the page must never do: a dialog (alert), an
	// uncaught exception, a Content-Security-Policy violation.
	problems []string
}

// newBrowser starts headless Chromium; with certFile, it trusts the key of
// that certificate for HTTPS.
func newBrowser(t *testing.T, certFile string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 1000),
	)
	if certFile != "" {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", spki(t, certFile)))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{ctx: ctx, start: time.Now()}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			b.problem("a dialog opened: " + e.Message)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		case *runtime.EventExceptionThrown:
			b.problem("uncaught exception: " + (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
		case *log.EventEntryAdded:
			// Network entries are the 401s the page handles and the
			// favicon's 404; security entries are CSP violations.
			if e.Entry.Source == log.EntrySourceSecurity || e.Entry.Source == log.EntrySourceJavascript {
				b.problem(string(e.Entry.Source) + ": " + e.Entry.Text)
			}
		}
	})
	if err == nil {
		_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	}
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// check fails the test if the page did anything it must never do.
func (b *browser) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Fatalf("the page misbehaved:\n%s", strings.Join(b.problems, "\n"))
	}
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wait polls the JavaScript condition in the page until it is true, for
// at most d, and fails the test with what the page shows if it never is.
func (b *browser) wait(t *testing.T, what, cond string, d time.Duration) {
	t.Helper()
	ok, err := chromedp.Run(b.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil || !ok {
		shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.getElementById('error').textContent + ' | ' + document.body.innerText).slice(0, 2000)`))
		b.shot(t, "failed.png")
		t.Fatalf("%s: not true within %v (%v); the page shows: %s", what, d, err, shown)
	}
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of the whole page under the test's artifact
// directory (kept with go test -artifacts; see docs/architecture.md).
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s (%.1fs after the browser started)", p, time.Since(b.start).Seconds())
}

const (
	cells        = `[...document.querySelectorAll('#slotmap .cell[data-slot]')]`
	allSlotsLed  = cells + `.length === 256 && ` + cells + `.every(c => c.dataset.leader !== '')`
	nodeRows     = `[...document.querySelectorAll('#nodes tr[data-node]')]`
	noInjectedEl = `document.querySelectorAll('img, script:not([src$="console.js"]), iframe, object').length === 0`
)

// The console in a real browser against a real cluster (3 meta, 3 data,
// 1 session, TLS and tokens as deployed): it asks for the token and says
// when one is refused, lists every node, colours all 256 slots by leader,
// charts registrations and push latency from the nodes' metrics, follows
// a data node's death to the new slot leaders without a reload, and shows
// hostile names as text.
func TestConsole_Browser_OverviewSlotsCharts_FollowsAFailover(t *testing.T) {
	bin := chromium(t)
	began := time.Now()
	c := testcluster.Start(t, testcluster.Spec{
		Meta: 3, Data: 3, Session: 1,
		MetaConfig: func(i int, cfg *meta.Config) {
			if i == 0 { // the node the browser reads: charts fill in seconds
				cfg.Console.Interval, cfg.Console.Window, cfg.Console.History = time.Second, 10*time.Second, time.Minute
			}
		},
		DataConfig: func(i int, cfg *data.Config) {
			cfg.Zone = []string{"az1", "az2", xss}[i]
		},
		SessionConfig: func(_ int, cfg *session.Config) { cfg.Zone = "az1" },
	})
	c.WaitDataSettled(t)
	token := c.Token(t, identity.RoleAdmin, testcluster.AdminName)
	m0 := c.Meta(0)
	url := c.URL(m0.Server().HTTPAddr(), "/ui/")
	t.Logf("console at %s (chromium %s)", url, bin)

	t.Logf("cluster settled in %.1fs", time.Since(began).Seconds())
	b := newBrowser(t, m0.Config.TLS.CertFile)
	b.do(t, "open the console", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("login")))
	b.wait(t, "asks for the token", `document.getElementById('error').textContent.includes('needs an admin token (401')`, 10*time.Second)
	b.do(t, "enter a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.ID("connect")))
	b.wait(t, "says the token was refused", `document.getElementById('error').textContent.includes('token was refused (401 Unauthorized)') && !document.getElementById('login').hidden`, 10*time.Second)
	b.shot(t, "01-token-refused.png")
	if stored := eval[any](t, b, `sessionStorage.getItem('strata.console.token')`); stored != nil {
		t.Fatalf("sessionStorage holds %q after the token was refused, want nothing", stored)
	}

	b.do(t, "enter the admin token", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("connect")))
	b.wait(t, "lists the 7 nodes, all alive",
		nodeRows+`.length === 7 && `+nodeRows+`.every(r => r.dataset.state === 'alive') &&
		document.querySelector('#nodes tr[data-node="session-0"]').children[6].textContent !== ''`, 20*time.Second)
	// A client publishing and subscribing: registrations to rate, pushes
	// to time. After the collector's first scrape of the session: what a
	// node counted before its first scrape has no time to be charted at.
	cl := sdktest.New(t, c, client.WithSessions(c.Session(0).Server().GRPCAddr()), client.WithZone("az1"))
	ctx := sdktest.Ctx(t)
	sub, err := cl.Subscribe(ctx, "console.ticks")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cl.Publish(ctx, "console.ticks", []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if err := pub.Update(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testcluster.Eventually(t, testcluster.DefaultWait, func() error {
		snap, err := sub.Next(ctx)
		if err != nil || len(snap.Values) != 1 || string(snap.Values[0].Data) != "20" {
			return fmt.Errorf("snapshot %+v, %v; want the 20th update", snap, err)
		}
		return nil
	})

	b.wait(t, "shows the session's client connection",
		`document.querySelector('#nodes tr[data-node="session-0"]').children[4].textContent === '1'`, 10*time.Second)
	b.wait(t, "colours every slot by its leader", allSlotsLed, 10*time.Second)
	if stored := eval[string](t, b, `sessionStorage.getItem('strata.console.token')`); stored != token {
		t.Fatalf("sessionStorage holds %q, want the admin token entered", stored)
	}
	// The zone named like an HTML tag is shown as that text, and made
	// no element.
	b.wait(t, "shows the hostile zone as text",
		`[...document.querySelectorAll('#nodes .zone')].some(z => z.textContent === 'zone '+`+jsString(xss)+`) && `+noInjectedEl, 5*time.Second)
	b.wait(t, "charts the client's registrations and pushes",
		`[...document.querySelectorAll('#chart-registrations circle[data-series="publishers"]')].some(c => Number(c.dataset.value) > 0) &&
		[...document.querySelectorAll('#chart-registrations circle[data-series="subscribers"]')].some(c => Number(c.dataset.value) > 0) &&
		[...document.querySelectorAll('#chart-latency circle[data-series="p99"]')].some(c => Number(c.dataset.value) > 0)`, 20*time.Second)
	b.shot(t, "02-overview-slots-charts.png")
	b.check(t)

	// Stop the data node leading slot 0: the map follows, without a
	// reload, to every slot led by a live node, the moved ones marked.
	st := m0.Server().State()
	victim := string(st.Table.Slots[0].Leader)
	idx := -1
	for i := range 3 {
		if c.Data(i).ID == victim {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("slot 0 is led by %q, not a data node of the cluster", victim)
	}
	eval[bool](t, b, `window.sameDocument = true`)
	c.StopData(t, idx, true)
	t.Logf("stopped %s", victim)
	b.wait(t, "shows "+victim+"'s slots led elsewhere, the moves marked",
		allSlotsLed+` && `+cells+`.every(c => c.dataset.leader !== `+jsString(victim)+`) && document.querySelectorAll('#slotmap .cell.moved').length > 0`, 30*time.Second)
	b.wait(t, "drops "+victim+" from the live nodes",
		`!`+nodeRows+`.some(r => r.dataset.node === `+jsString(victim)+` && r.dataset.state === 'alive')`, 10*time.Second)
	if !eval[bool](t, b, `window.sameDocument === true`) {
		t.Fatal("the page was reloaded")
	}
	b.shot(t, "03-after-failover.png")
	b.check(t)

	t.Run("services", func(t *testing.T) {
		testServices(t, b, cl)
	})
}

// testServices checks the services view: a publication made by a client
// appears without a reload, with its instance, and a data ID and a value
// made of HTML stay text.
func testServices(t *testing.T, b *browser, cl *client.Client) {
	ctx := sdktest.Ctx(t)
	inst := discovery.Instance{Addr: "10.0.0.1:8080", Weight: 10, Zone: "az1", Metadata: map[string]string{"version": "1.4.2"}, State: discovery.StateDraining}
	reg, err := discovery.New(cl).Register(ctx, "console.echo", inst)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reg.Deregister(context.Background()) }()
	evil, err := cl.Publish(ctx, xss, []byte(`<script>alert(2)</script>`))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = evil.Unpublish(context.Background()) }()

	row := `document.querySelector('#service-list tr[data-service^="console.echo#@#"]')`
	b.wait(t, "lists the published service", row+` !== null`, 20*time.Second)
	b.do(t, "open the service", chromedp.Click(chromedp.CSS(`#service-list tr[data-service^="console.echo#@#"]`)))
	b.wait(t, "shows its instance", `(() => { const e = document.querySelector('#service-detail [data-addr="10.0.0.1:8080"]');
		return e !== null && e.textContent.includes('weight 10') && e.textContent.includes('zone az1') && e.textContent.includes('state draining') && e.textContent.includes('version=1.4.2'); })()`, 10*time.Second)
	b.wait(t, "shows the HTML data ID as text", `[...document.querySelectorAll('#service-list tr[data-service] td:first-child')].some(td => td.textContent === `+jsString(xss)+`) && `+noInjectedEl, 20*time.Second)
	b.do(t, "open the HTML-named service", chromedp.Click(chromedp.CSS(`#service-list tr[data-service^="<img"]`)))
	b.wait(t, "shows its value as text", `[...document.querySelectorAll('#service-detail .raw')].some(e => e.textContent === '<script>alert(2)</script>') && `+noInjectedEl, 10*time.Second)
	b.shot(t, "04-services.png")
	b.check(t)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
