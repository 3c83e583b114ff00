package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// dbFlag makes the instance's catalog the PostgreSQL database of --db. The
// settings keep the URL without a password.
func dbFlag(c *cli.Context, s *instance.Settings) error {
	db := c.String("db")
	if db == "" {
		return nil
	}
	u, err := dbURL(db)
	if err != nil {
		return err
	}
	s.Catalog = u
	return nil
}

// dbURL checks a --db value and returns it as the settings keep it. A URL
// with a password is refused: settings files and output never hold one.
func dbURL(db string) (string, error) {
	if db != "" && !postgres.IsURL(db) {
		return "", exitf(2, "--db %q: give a PostgreSQL URL, postgresql://USER@HOST:PORT/DATABASE", postgres.Redact(db))
	}
	if postgres.HasPassword(db) {
		return "", exitf(2, "--db: leave the password out of the URL (it would be stored in the settings); put it in ~/.pgpass (HOST:PORT:DATABASE:USER:PASSWORD, mode 0600) or PGPASSWORD, and give %s", postgres.Redact(db))
	}
	// Fill in what libpq's environment says (PGHOST, PGUSER, …) so that the
	// settings name the database on their own.
	cfg, err := pgx.ParseConfig(db)
	if err != nil {
		return "", exitf(2, "--db %s: %v", postgres.Redact(db), err)
	}
	if db == "" || db == "postgresql://" || db == "postgres://" {
		return fmt.Sprintf("postgresql://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database), nil
	}
	return db, nil
}

// sharedTaken refuses an init --db of a database that holds an instance
// already. init asks it first, before it looks at the storage's claim: a
// second workstation's init of a team's instance was told the claim was
// "taken for this one" (the same host, the same database, no data yet)
// before the database refused it, and nothing had been taken.
func sharedTaken(ctx context.Context, cat catalog.Catalog, s instance.Settings) error {
	st, ok := cat.(*postgres.Store)
	if !ok {
		return fmt.Errorf("the catalog of %s is not a PostgreSQL store", s.Catalog)
	}
	if sh, err := loadShared(ctx, st); err == nil {
		return fmt.Errorf("the database %s already holds instance %q: join it with `lamina connect %s --db %s`", s.Catalog, sh.Name, sh.Name, s.Catalog)
	}
	return nil
}

// initShared records the new instance's shared settings in its database,
// which must not hold another instance. unshare removes them again, for an
// init that fails after (its storage claim): only while they are still
// this init's (an init of another workstation may not overwrite them:
// AddSetting), so the database is as it was, as the failure says.
func initShared(ctx context.Context, cat catalog.Catalog, s instance.Settings) (unshare func() error, err error) {
	st, ok := cat.(*postgres.Store)
	if !ok {
		return nil, fmt.Errorf("the catalog of %s is not a PostgreSQL store", s.Catalog)
	}
	if err := sharedTaken(ctx, st, s); err != nil {
		return nil, err
	}
	b, err := json.Marshal(sharedSettings{Name: s.Name, ID: s.ID, Storage: s.Storage, S3: s.S3, Scratch: s.Scratch, Created: s.Created})
	if err != nil {
		return nil, err
	}
	added, err := st.AddSetting(ctx, sharedSettingsName, b)
	if err != nil {
		return nil, err
	}
	if !added { // another init of the database, meanwhile
		if _, err := loadShared(ctx, st); err != nil {
			return nil, err
		}
		return nil, sharedTaken(ctx, st, s)
	}
	return func() error {
		// The init's context may be what failed it (Ctrl-C).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := st.DeleteSettingIf(ctx, sharedSettingsName, b)
		return err
	}, nil
}

func cmdConnect() *cli.Command {
	return &cli.Command{
		Name:        "connect",
		Usage:       "join an instance whose catalog is a PostgreSQL database",
		Description: "Its settings (storage, S3 endpoint, …) come from the database.",
		ArgsUsage:   "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", EnvVars: []string{"LAMINA_DB"}, Usage: "the database, postgresql://USER@HOST:PORT/DB (default: libpq's PGHOST, PGUSER, PGDATABASE, …; password from PGPASSWORD or ~/.pgpass)"},
			&cli.StringFlag{Name: "cache-size", Usage: "bound of the local cache of data fetched from S3, e.g. 20GB (default 10GiB)"},
			&cli.StringFlag{Name: "name", Usage: "the name this machine knows the instance by (default NAME, its name in the database): to join it beside another instance of that name here"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina connect NAME [--db postgresql://USER@HOST:PORT/DB] [--name LOCAL]")
			}
			name := c.Args().First()
			if err := instance.CheckName(name); err != nil {
				return exitf(2, "%v", err)
			}
			local := name
			if n := c.String("name"); n != "" {
				if err := instance.CheckName(n); err != nil {
					return exitf(2, "--name: %v", err)
				}
				local = n
			}
			if c.String("db") == "" && os.Getenv("PGHOST") == "" && os.Getenv("PGDATABASE") == "" && os.Getenv("PGSERVICE") == "" {
				return exitf(2, "which database? give --db postgresql://USER@HOST:PORT/DB (or set LAMINA_DB, or PGHOST and PGDATABASE)")
			}
			u, err := dbURL(c.String("db"))
			if err != nil {
				return err
			}
			// An empty database is not set up: only init makes a catalog.
			st, err := dialPostgres(c.Context, u, postgres.Options{Existing: true})
			if errors.Is(err, postgres.ErrNoCatalog) {
				return fmt.Errorf("the database %s holds no lamina instance (create one with `lamina init --db URL`)", postgres.Redact(u))
			}
			if err != nil {
				return err
			}
			sh, err := loadShared(c.Context, st)
			st.Close()
			if err != nil {
				return err
			}
			if sh.Name != name {
				return fmt.Errorf("the database %s holds instance %q, not %q", u, sh.Name, name)
			}
			dirs, err := instance.UserDirs()
			if err != nil {
				return err
			}
			if dirs.Has(local) {
				return connectAgain(c, dirs, local, u, sh)
			}
			s, err := dirs.NewSettings(local, sh.Storage)
			if err != nil {
				return err
			}
			s.ID, s.S3, s.Scratch, s.Created, s.Catalog = sh.ID, sh.S3, sh.Scratch, sh.Created, u
			if sh.S3 != nil {
				if err := checkEndpoint(sh.S3.Endpoint); err != nil {
					return fmt.Errorf("the database's S3 endpoint: %w", err)
				}
			}
			if v := c.String("cache-size"); v != "" {
				if s.CacheSize, err = parseCacheSize(v); err != nil {
					return exitf(2, "--cache-size: %v", err)
				}
			}
			in, err := openSettings(c.Context, s, true, true) // the storage answers
			if err != nil {
				return err
			}
			claimed, err := claimIfUnclaimed(c.Context, in)
			in.Close()
			if err != nil {
				return err
			}
			if claimed {
				fmt.Fprintf(c.App.Writer, "%s had no owner record (an init of %q interrupted after it registered the instance in the database): claimed it for %q (%s)\n",
					s.Storage, s.Name, s.Name, "instance.json")
			}
			if err := dirs.Create(s); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "connected to instance %q\n  storage: %s\n  catalog: %s\nIt is now the current instance.\n", s.Name, s.Storage, s.Catalog)
			return nil
		},
	}
}

// connectAgain is connect of instance sh (its database at u) when an
// instance named local has settings here already. The same instance at the
// same URL is a success that changes nothing (it becomes current, as after
// the first connect); at another URL (the server moved, a role= added) its
// settings take the new one, and it says so. Another instance of that name
// is refused with the way to join this one beside it (--name). Before,
// every second connect said "already exists …; pick another --name",
// which connect did not have.
func connectAgain(c *cli.Context, dirs instance.Dirs, local, u string, sh sharedSettings) error {
	old, err := dirs.Load(local)
	if err != nil {
		return err
	}
	if old.ID != sh.ID {
		return fmt.Errorf("an instance named %q already exists on this machine (another instance: id %s, catalog %s); join this one under another name: lamina connect %s --db %s --name %s-2",
			local, old.ID, postgres.Redact(old.Catalog), sh.Name, postgres.Redact(u), sh.Name)
	}
	changed := old.Catalog != u
	was := old.Catalog
	old.Catalog = u
	if v := c.String("cache-size"); v != "" {
		size, err := parseCacheSize(v)
		if err != nil {
			return exitf(2, "--cache-size: %v", err)
		}
		changed = changed || size != old.CacheSize
		old.CacheSize = size
	}
	if changed {
		if err := dirs.Save(old); err != nil {
			return err
		}
	}
	if err := dirs.SetCurrent(local); err != nil {
		return err
	}
	switch {
	case was != u:
		fmt.Fprintf(c.App.Writer, "instance %q was connected already: its catalog is now %s (was %s; a mount of it running now keeps the old one until remounted)\nIt is now the current instance.\n",
			local, postgres.Redact(u), postgres.Redact(was))
	case changed:
		fmt.Fprintf(c.App.Writer, "instance %q was connected already: its settings were updated\nIt is now the current instance.\n", local)
	default:
		fmt.Fprintf(c.App.Writer, "instance %q is connected already (catalog %s): nothing changed\nIt is now the current instance.\n", local, postgres.Redact(u))
	}
	return nil
}

// claimIfUnclaimed writes the storage claim (instance.json) that an init
// killed between registering the instance in the database and claiming
// the storage did not write, as that init would have: without it another
// init could claim the same storage, and this instance's saves would then
// say it had been taken over. A claim of another instance is left alone.
// A storage folder that is not on this machine (its disk not mounted), or
// a root that holds none of the data of the catalog's versions, is refused
// (instance.CheckLost): it is not where that init wrote.
func claimIfUnclaimed(ctx context.Context, in *instance.Instance) (bool, error) {
	if err := in.CheckLost(ctx); err != nil {
		return false, err
	}
	_, found, err := in.StorageOwner(ctx)
	if err != nil || found {
		return false, err
	}
	return true, in.WriteClaim(ctx)
}
