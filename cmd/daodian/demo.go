package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/daodian/daodian"
)

// Demo data names.
const (
	demoMerchant = "demo-merchant"
	demoShop     = "demo-shop"
)

// demo is what --demo seeded, for printing.
type demo struct {
	app   *daodian.App
	group *daodian.Issued // a group-buy order of two vouchers
	card  *daodian.Issued // a 5-times card
}

// seedDemo fills an empty ledger with a merchant, a shop, an app and tickets. On a
// ledger that already has apps it seeds nothing and returns nil: demo data must
// never be mixed into a real ledger.
func seedDemo(ctx context.Context, l *daodian.Ledger) (*demo, error) {
	n, err := l.Counts(ctx)
	if err != nil {
		return nil, err
	}
	if n.Apps > 0 || n.Tickets > 0 {
		return nil, nil
	}
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: demoMerchant, ID: demoShop, Name: "演示门店"}); err != nil {
		return nil, err
	}
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "demo-pos", MerchantID: demoMerchant})
	if err != nil {
		return nil, err
	}
	group, err := l.Issue(ctx, daodian.IssueRequest{
		MerchantID: demoMerchant, Count: 2, Quantity: 1, ItemName: "双人套餐团购券",
		TotalAmountCents: 9900, RealAmountCents: 8800, OriginalPriceCents: 12800, UserPhone: "13800004139",
	})
	if err != nil {
		return nil, err
	}
	card, err := l.Issue(ctx, daodian.IssueRequest{
		MerchantID: demoMerchant, Count: 1, Quantity: 5, ItemName: "洗剪吹5次卡",
		TotalAmountCents: 25000, RealAmountCents: 22500, OriginalPriceCents: 30000, UserPhone: "13900001234",
	})
	if err != nil {
		return nil, err
	}
	return &demo{app: app, group: group, card: card}, nil
}

// print writes the demo credentials and ready-to-paste calls, each starting with
// the command that runs this program from a shell (selfCommand).
func (d *demo) print(w io.Writer, url string) {
	self := selfCommand()
	auth := fmt.Sprintf("--url %s --app-key %s --app-secret %s", url, d.app.Key, d.app.Secret)
	g0, g1, c := d.group.Tickets[0], d.group.Tickets[1], d.card.Tickets[0]
	var b strings.Builder
	fmt.Fprintf(&b, "demo data seeded (merchant %s, shop %s)\n", demoMerchant, demoShop)
	fmt.Fprintf(&b, "  app_key    %s\n  app_secret %s\n", d.app.Key, d.app.Secret)
	fmt.Fprintf(&b, "  group-buy order %s: ticket_id %s code %s; ticket_id %s code %s\n", d.group.Order.SubOrderNo, g0.ID, g0.Code, g1.ID, g1.Code)
	fmt.Fprintf(&b, "  5-times card: ticket_id %s code %s\n", c.ID, c.Code)
	fmt.Fprintf(&b, "try (in another terminal):\n")
	fmt.Fprintf(&b, "  %s call taobao.time.get %s\n", self, auth)
	fmt.Fprintf(&b, "  %s call alibaba.alsc.daodian.ticket.consult 'consult_request={\"request_id\":\"demo-c1\",\"shop_id\":\"%s\",\"ticket_code\":\"%s\"}' %s\n", self, demoShop, g0.Code, auth)
	fmt.Fprintf(&b, "  %s call alibaba.alsc.merchant.ext.ticketcode.use 'use_request={\"ticket_code\":\"%s\",\"shop_id\":\"%s\",\"quantity\":2,\"ticket_request_id\":\"demo-u1\"}' %s\n", self, g0.Code, demoShop, auth)
	fmt.Fprintf(&b, "  %s call alibaba.alsc.daodian.ticket.reserve 'ticket_reverse_top_request={\"request_id\":\"demo-r1\",\"ticket_id\":\"%s\"}' %s\n", self, g0.ID, auth)
	fmt.Fprintf(&b, "  %s reverse --ticket-id %s %s\n", self, g1.ID, auth)
	_, _ = io.WriteString(w, b.String())
}

// self is what decides how a shell runs this program again.
type self struct {
	exe    string // this executable, absolute, symlinks resolved ("" if unknown)
	onPath bool   // `daodian` on PATH is this very file
	goRun  bool   // exe is the temporary binary of `go run`
	pkg    string // the main package's import path
	// version is the module version when the module came from the module proxy
	// (`go run pkg@version`); "" for a build of a local checkout.
	version string
	// inRoot: the working directory is the module's root, where ./cmd/daodian is.
	inRoot bool
}

// command is the shell words that run this program, for printed lines that
// work as pasted. The installed `daodian` when it is this program; under
// `go run` the same `go run` (a temporary binary has no stable name); else the
// executable's absolute path, so the line works from any directory.
func (s self) command() string {
	switch {
	case s.onPath:
		return "daodian"
	case s.goRun && s.version != "":
		return "go run " + s.pkg + "@" + s.version
	case s.goRun && s.inRoot:
		return "go run ./cmd/daodian"
	case s.goRun && s.pkg != "":
		// Anywhere inside the module, the import path names its package.
		return "go run " + s.pkg
	case s.exe != "":
		return shellQuote(s.exe)
	}
	return "daodian"
}

// selfCommand returns how to run this program from a shell (self.command).
func selfCommand() string {
	var s self
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		s.exe = exe
	}
	if p, err := exec.LookPath("daodian"); err == nil && s.exe != "" {
		a, errA := os.Stat(p)
		b, errB := os.Stat(s.exe)
		s.onPath = errA == nil && errB == nil && os.SameFile(a, b)
	}
	s.goRun = isGoRunBinary(s.exe)
	if bi, ok := debug.ReadBuildInfo(); ok {
		s.pkg = bi.Path
		if bi.Main.Sum != "" { // only a downloaded module has a checksum
			s.version = bi.Main.Version
		}
	}
	if st, err := os.Stat(filepath.Join("cmd", "daodian", "main.go")); err == nil && st.Mode().IsRegular() {
		s.inRoot = true
	}
	return s.command()
}

// goCacheExe is the directory of an executable that go run keeps in the build
// cache (Go 1.24 on): $GOCACHE/xx/<sha256>-d/NAME.
var goCacheExe = regexp.MustCompile(`^[0-9a-f]{64}-d$`)

// isGoRunBinary reports whether exe was linked by `go run`: a first run links into
// $GOTMPDIR/go-build…/b001/exe/NAME, a later one runs the copy in the build cache.
func isGoRunBinary(exe string) bool {
	dir := filepath.Dir(exe)
	return filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build") ||
		goCacheExe.MatchString(filepath.Base(dir))
}

// shellQuote returns p as one shell word: unchanged when it holds only
// characters no shell treats specially, else single-quoted.
func shellQuote(p string) string {
	safe := p != ""
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/:=@,+%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
