// Package blobref keeps the references to the blobs in the regions' stores
// and the staging store (package blob) and removes a blob once nothing
// refers to it.
//
// A reference says that a holder (a managed image or gallery image version,
// a template's staged files, a VHD runOutput, by a name its owner chooses)
// uses the blob with a sha256 in one named store (a region, or the staging
// store).
// References are documents of type Type, changed in the same transaction as
// the resources holding them; a blob is removed after the commit that drops
// its last reference, under the store's per-blob lock, and only if no
// reference has appeared since (a distribution that took the blob meanwhile
// keeps it).
package blobref

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Type is the document type of the references to one blob in one region.
const Type = "Goldsmith/blobs"

// ref is the references to one blob in one region.
type ref struct {
	ID      string   `json:"id"`
	Region  string   `json:"region"`
	SHA256  string   `json:"sha256"`
	Holders []string `json:"holders"`
}

func refID(region, sum string) string {
	return "/goldsmith/blobs/" + strings.ToLower(region) + "/" + strings.ToLower(sum)
}

// Stores are the blob stores references name: *blob.Regions, or the
// regions and the staging store together.
type Stores interface {
	// Names lists every store, for Sweep.
	Names() []string
	Store(name string) (blob.Store, bool)
}

// Refs keeps the references to the blobs of a site's stores.
type Refs struct {
	st      *store.Store
	regions Stores
	log     *slog.Logger
}

// New returns the references kept in st to the blobs of stores.
func New(st *store.Store, stores Stores, log *slog.Logger) *Refs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refs{st: st, regions: stores, log: log}
}

// Acquire records, in tx, that holder uses the blob sum in region.
func (r *Refs) Acquire(ctx context.Context, tx *store.Tx, region, sum, holder string) error {
	id := refID(region, sum)
	var rf ref
	if _, err := tx.GetJSON(ctx, id, &rf); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read blob references %s: %w", id, err)
		}
		rf = ref{ID: id, Region: strings.ToLower(region), SHA256: strings.ToLower(sum)}
	}
	if slices.Contains(rf.Holders, holder) {
		return nil
	}
	rf.Holders = append(rf.Holders, holder)
	return tx.PutJSON(ctx, id, Type, rf)
}

// Release drops, in tx, holder's reference to the blob sum in region; once
// tx commits, a blob nothing refers to any more is removed.
func (r *Refs) Release(ctx context.Context, tx *store.Tx, region, sum, holder string) error {
	id := refID(region, sum)
	var rf ref
	if _, err := tx.GetJSON(ctx, id, &rf); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("read blob references %s: %w", id, err)
	}
	rf.Holders = slices.DeleteFunc(rf.Holders, func(h string) bool { return h == holder })
	if len(rf.Holders) > 0 {
		return tx.PutJSON(ctx, id, Type, rf)
	}
	if err := tx.Delete(ctx, id); err != nil {
		return err
	}
	tx.AfterCommit(func() { r.collect(context.WithoutCancel(ctx), region, sum) })
	return nil
}

// collect removes a blob from a region's store if no reference to it
// exists (checked under the blob's lock, so a distribution taking it now
// either sees the file or places it again).
func (r *Refs) collect(ctx context.Context, region, sum string) {
	st, ok := r.regions.Store(region)
	if !ok {
		return
	}
	unlock := st.Lock(sum)
	defer unlock()
	err := r.st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, refID(region, sum))
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		if err != nil {
			r.log.Warn("check blob references", "region", region, "sha256", sum, "err", err)
		}
		return
	}
	if err := st.Remove(sum); err != nil {
		r.log.Warn("remove blob", "region", region, "sha256", sum, "err", err)
		return
	}
	r.log.Info("removed a blob nothing refers to", "region", region, "sha256", sum)
}

// Sweep puts the references and the stores right after a crash: it drops
// the references of holders live says are gone, then removes from every
// store the copies in progress and the blobs no reference names. Call it
// when nothing is distributing (at start, before any run).
func (r *Refs) Sweep(ctx context.Context, live func(holder string) bool) error {
	referenced := map[string]map[string]bool{} // region → sums
	err := r.st.Update(ctx, func(tx *store.Tx) error {
		docs, err := tx.List(ctx, store.Query{Type: Type})
		if err != nil {
			return err
		}
		for _, d := range docs {
			var rf ref
			if err := json.Unmarshal(d.Body, &rf); err != nil {
				return fmt.Errorf("decode %s: %w", d.ID, err)
			}
			held := slices.DeleteFunc(slices.Clone(rf.Holders), func(h string) bool { return !live(h) })
			switch {
			case len(held) == 0:
				if err := tx.Delete(ctx, rf.ID); err != nil {
					return err
				}
				continue
			case len(held) < len(rf.Holders):
				rf.Holders = held
				if err := tx.PutJSON(ctx, rf.ID, Type, rf); err != nil {
					return err
				}
			}
			if referenced[rf.Region] == nil {
				referenced[rf.Region] = map[string]bool{}
			}
			referenced[rf.Region][rf.SHA256] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep blob references: %w", err)
	}
	for _, region := range r.regions.Names() {
		st, _ := r.regions.Store(region)
		if err := st.CleanTmp(); err != nil {
			return fmt.Errorf("sweep region %s: %w", region, err)
		}
		sums, err := st.List()
		if err != nil {
			return fmt.Errorf("sweep region %s: %w", region, err)
		}
		for _, sum := range sums {
			if referenced[region][sum] {
				continue
			}
			r.log.Warn("removing a blob nothing refers to", "region", region, "sha256", sum)
			if err := st.Remove(sum); err != nil {
				return fmt.Errorf("sweep region %s: %w", region, err)
			}
		}
	}
	return nil
}
