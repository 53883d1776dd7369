package web

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

const logPage = 100

type auditData struct {
	Entries []api.LogEntry
	After   int64
	Next    int64
	Chained bool   // every entry's hash recomputed and linked to the one before
	Error   string // where the chain broke
	Head    string
	// Unanchored is set when the entry before the page could not be read, so only the
	// links within the page were checked.
	Unanchored bool
}

func parseAfter(r *http.Request) (int64, error) {
	q := r.URL.Query().Get("after")
	if q == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n < 0 {
		return 0, api.Errorf(api.CodeBadRequest, "after must be a non-negative sequence number")
	}
	return n, nil
}

// auditLog pages the audit log and checks its hash chain on the page: each entry's hash is
// recomputed (tufrepo.AuditHash) and must name the previous entry's. The first entry of a
// page is linked to the entry before it, read too.
func (u *UI) auditLog(w http.ResponseWriter, r *http.Request) {
	after, err := parseAfter(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.cached(w, r, fmt.Sprint(h.Timestamp, ".", h.Snapshot), func() (string, page, error) {
		d, err := u.auditData(r.Context(), after)
		if err != nil {
			return "", page{}, err
		}
		return "auditlog", page{Title: "Audit log", Kind: "auditlog", Data: d}, nil
	})
}

func (u *UI) auditData(ctx context.Context, after int64) (*auditData, error) {
	d := &auditData{After: after}
	var prev []byte
	start := after
	if after > 0 {
		// The entry before the page anchors its chain.
		es, err := u.db.AuditPage(ctx, after-1, 1)
		if err != nil {
			return nil, err
		}
		if len(es) == 1 && es[0].Seq == after {
			prev, _ = hex.DecodeString(es[0].Hash)
		} else {
			start = -1
		}
	}
	es, err := u.db.AuditPage(ctx, after, logPage)
	if err != nil {
		return nil, err
	}
	d.Entries = es
	if len(es) == logPage {
		d.Next = es[len(es)-1].Seq
	}
	if len(es) > 0 {
		if start < 0 {
			// No entry at the cursor to anchor on: check the chain within the page.
			prev, _ = hex.DecodeString(es[0].PrevHash)
			d.Unanchored = true
		}
		head, err := tufrepo.VerifyAuditChain(prev, es)
		if err != nil {
			d.Error = err.Error()
		} else {
			d.Chained, d.Head = true, hex.EncodeToString(head)
		}
	}
	return d, nil
}

type tlogEntryView struct {
	api.TransparencyLogEntry
	Status string
	OK     bool
}

type tlogData struct {
	Configured bool
	URL        string
	KeyChecked bool
	Entries    []tlogEntryView
	Pending    []tlogPendingView
	Next       int64
}

type tlogPendingView struct {
	Role                 string
	Version              int64
	Attempts             int
	LastError, NextRetry string
}

// tlogPage lists transparency log entries with their inclusion status: each entry's
// inclusion proof is checked again on the page (and the checkpoint's signature when the
// log's key is configured), and the signed versions still waiting for an entry.
func (u *UI) tlogPage(w http.ResponseWriter, r *http.Request) {
	after, err := parseAfter(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	h, err := u.head()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	ctx := r.Context()
	es, err := u.db.TlogEntries(ctx, after, logPage)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d := &tlogData{Configured: u.cfg.TlogURL != "", URL: u.cfg.TlogURL, KeyChecked: u.cfg.TlogKey != nil}
	keys, err := u.onlineKeySet(ctx, h)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	for _, e := range es {
		v := tlogEntryView{TransparencyLogEntry: e}
		k, ok := keys[e.KeyID]
		switch {
		case !ok:
			v.Status = "not checked: key " + shortID(e.KeyID) + " is not named by the current root or targets"
		default:
			if err := tlog.VerifyRekorEntry(e.Rekor, e.Envelope, k, u.cfg.TlogKey); err != nil {
				v.Status = "FAILS: " + err.Error()
			} else {
				v.OK = true
				v.Status = fmt.Sprintf("included at index %d of a tree of %d", e.Rekor.InclusionProof.LogIndex, e.Rekor.InclusionProof.TreeSize)
				if u.cfg.TlogKey == nil {
					v.Status += " (checkpoint signature not checked: no log key configured)"
				}
			}
		}
		d.Entries = append(d.Entries, v)
	}
	if len(es) == logPage {
		d.Next = es[len(es)-1].Seq
	}
	pend, err := u.db.TlogPendingList(ctx, logPage)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	for _, p := range pend {
		pv := tlogPendingView{Role: p.Role, Version: p.Version, Attempts: p.Attempts, LastError: p.LastError}
		if !p.NextAttempt.IsZero() {
			pv.NextRetry = fmtTime(p.NextAttempt)
		}
		d.Pending = append(d.Pending, pv)
	}
	u.render(w, r, http.StatusOK, "tlog", page{Title: "Transparency log", Kind: "tlog", Data: d})
}

// onlineKeySet returns every key the current root and targets name: the keys that sign
// what the server logs.
func (u *UI) onlineKeySet(ctx context.Context, h Head) (map[string]*metadata.Key, error) {
	rp, err := u.load(ctx, tufrepo.RoleRoot, h.Root)
	if err != nil {
		return nil, err
	}
	out := map[string]*metadata.Key{}
	for id, k := range rp.root.Signed.Keys {
		out[id] = k
	}
	tv, _, err := u.db.LatestPublishedVersion(ctx, tufrepo.RoleTargets)
	if err != nil {
		return nil, err
	}
	tp, err := u.load(ctx, tufrepo.RoleTargets, tv)
	if err != nil {
		return nil, err
	}
	if dl := tp.targets.Signed.Delegations; dl != nil {
		for id, k := range dl.Keys {
			out[id] = k
		}
	}
	return out, nil
}
