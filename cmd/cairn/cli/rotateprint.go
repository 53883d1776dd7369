package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/client"
)

// printOnlineKeysResult says which keys the server signs timestamp and snapshot with after
// a root that moved them was uploaded.
func (a *app) printOnlineKeysResult(p *client.RootPlan, v *topLevelVerified) {
	for _, c := range []client.RoleKeysChange{p.Timestamp, p.Snapshot} {
		if !c.Changed() {
			continue
		}
		if v != nil && v.RootVersion >= p.NextVersion {
			// The refresh verified the served timestamp (and snapshot) with root version
			// NextVersion or later, so they are signed by its keys.
			a.printf("The server now signs %s with the new key %s: the TUF refresh above verified it.\n", c.Role, client.KeyList(c.After.Keys))
		} else {
			a.printf("The server switches %s to the new key %s when it publishes root version %d.\n", c.Role, client.KeyList(c.After.Keys), p.NextVersion)
		}
		a.printf("The old %s key no longer signs: when the server next restarts, give the new key as --%s-key (instead of --standby-key) and the old one may go.\n", c.Role, c.Role)
	}
}

func savedNames(g []generatedKeyInfo) string {
	if len(g) == 0 {
		return "none"
	}
	out := make([]string, len(g))
	for i, k := range g {
		out[i] = k.Name
	}
	return strings.Join(out, ", ")
}

// printRootPlan says in words what the next root changes.
func (a *app) printRootPlan(cur *client.TopLevel, rep *rotateReport, gens []*generatedKey) {
	p := rep.Root
	a.printf("Root version %d is verified (through snapshot %d); it expires %s.\n", p.CurrentVersion, rep.Snapshot, untilText(p.ExpiresBefore, a.now()))
	if p.Renewal() {
		a.printf("Root version %d renews it: same keys and thresholds, expiring %s.\n", p.NextVersion, untilText(p.Expires, a.now()))
	} else {
		a.printf("Root version %d expires %s and changes:\n", p.NextVersion, untilText(p.Expires, a.now()))
	}
	generated := map[string]bool{}
	for _, g := range gens {
		generated[g.signer.KeyID] = true
	}
	a.printf("\n")
	a.printRoleChange("Root", p.Root, rep.KeyNames, generated)
	a.printf("\n")
	a.printRoleChange("Targets", p.Targets, rep.KeyNames, generated)
	if t := rep.Targets; t != nil {
		a.printf("  Targets version %d → %d is signed by the new targets keys and sent with root; it expires %s and keeps its delegations:\n", t.CurrentVersion, t.NextVersion, untilText(t.Expires, a.now()))
		a.printDelegations(t)
	}
	a.printf("\n")
	a.printOnlineKeysChange(p)

	var old, nw []string
	for _, id := range rep.RootSignedBy {
		n := keyName(rep.KeyNames, id)
		if p.Root.Before.Has(id) {
			old = append(old, n)
		}
		if p.Root.After.Has(id) {
			nw = append(nw, n)
		}
	}
	a.printf("\nRoot version %d is signed by %s of the current root keys (%s; %d needed, so clients that trust version %d accept it)", p.NextVersion, strconv.Itoa(len(old)), strings.Join(old, ", "), p.Root.Before.Threshold, p.CurrentVersion)
	a.printf(" and by %d of its own root keys (%s; %d needed).\n", len(nw), strings.Join(nw, ", "), p.Root.After.Threshold)
	if rep.Targets != nil {
		var tn []string
		for _, id := range rep.TargetsSignedBy {
			tn = append(tn, keyName(rep.KeyNames, id))
		}
		a.printf("Targets version %d is signed by %s (%d needed).\n", rep.Targets.NextVersion, strings.Join(tn, ", "), p.Targets.After.Threshold)
	}
	if len(gens) > 0 {
		a.printf("Generated keys are saved to your key store, encrypted with your passphrase, before anything is sent.\n")
	}
	for _, w := range p.Warnings {
		a.notef("warning: %s\n", w)
	}
	now := a.now()
	if d := p.Expires.Sub(now); d < 30*24*time.Hour {
		a.notef("warning: root version %d expires in %s; the server warns 30 days ahead, so 'cairn admin status' will warn at once\n", p.NextVersion, roughDuration(d))
	}
	if t := rep.Targets; t != nil && t.Expires.Sub(now) < 30*24*time.Hour {
		a.notef("warning: targets version %d expires in %s; 'cairn admin status' will warn at once\n", t.NextVersion, roughDuration(t.Expires.Sub(now)))
	}
	a.printf("\n")
}

// printOnlineKeysChange prints the timestamp and snapshot keys before and after, with the
// note that the server must already hold a new one.
func (a *app) printOnlineKeysChange(p *client.RootPlan) {
	if !p.OnlineKeysChanged() {
		a.printf("Timestamp and snapshot keep the server's online keys: timestamp %s; snapshot %s.\n", client.KeyList(p.Timestamp.After.Keys), client.KeyList(p.Snapshot.After.Keys))
		return
	}
	var moved []string
	for _, c := range []client.RoleKeysChange{p.Timestamp, p.Snapshot} {
		title := strings.ToUpper(c.Role[:1]) + c.Role[1:]
		if !c.Changed() {
			a.printf("%s keeps the server's online key %s.\n", title, client.KeyList(c.After.Keys))
			continue
		}
		moved = append(moved, c.Role)
		a.printf("%s key (online, held by the server) changes: %d of %s → %d of %s must sign.\n", title, c.Before.Threshold, plural(len(c.Before.Keys), "key"), c.After.Threshold, plural(len(c.After.Keys), "key"))
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		line := func(mark string, k client.TopLevelKey) {
			fmt.Fprintf(tw, "  %s\tkey %s\t%s\t%s\n", mark, k.KeyID, k.KeyType, k.Fingerprint)
		}
		for _, k := range c.Removed {
			line("- removes", k)
		}
		for _, k := range c.Added {
			line("+ adds", k)
		}
		for _, k := range c.Kept {
			line("  keeps", k)
		}
		tw.Flush()
	}
	a.printf("Note: the server must already hold the new %s key: start it with --standby-key URI for that key\n"+
		"before uploading ('cairnd keys public --key URI' prints the public key to compare). Otherwise the server\n"+
		"refuses root version %d and nothing changes. It switches to the new key in the publish that serves\n"+
		"root version %d; clients follow without a gap.\n",
		strings.Join(moved, " and "), p.NextVersion, p.NextVersion)
}

// printRoleChange prints a role's keys before and after.
func (a *app) printRoleChange(title string, c client.RoleKeysChange, names map[string]string, generated map[string]bool) {
	if !c.Changed() {
		a.printf("%s keys stay: %d of %s must sign.\n", title, c.After.Threshold, plural(len(c.After.Keys), "key"))
	} else {
		a.printf("%s keys: %d of %s → %d of %s must sign.\n", title, c.Before.Threshold, plural(len(c.Before.Keys), "key"), c.After.Threshold, plural(len(c.After.Keys), "key"))
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	line := func(mark string, k client.TopLevelKey, note string) {
		fmt.Fprintf(tw, "  %s\t%s\tkey %s\t%s\t%s\t%s\n", mark, keyName(names, k.KeyID), short(k.KeyID), k.KeyType, k.Fingerprint, note)
	}
	for _, k := range c.Removed {
		line("- removes", k, "")
	}
	for _, k := range c.Added {
		note := ""
		if generated[k.KeyID] {
			note = "(new, generated now)"
		}
		line("+ adds", k, note)
	}
	for _, k := range c.Kept {
		line("  keeps", k, "")
	}
	tw.Flush()
}
