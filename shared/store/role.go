package store

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// appRoleLock is the transaction-scoped advisory lock key that serializes EnsureAppRole runs
// (two at once would both see no role and one CREATE ROLE would fail).
const appRoleLock = 7_240_612

// roleName is what EnsureAppRole accepts as a role name: a plain lower-case identifier.
var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// scramIterations is the SCRAM-SHA-256 iteration count, Postgres's default.
const scramIterations = 4096

// EnsureAppRole creates or updates the login role the functions connect as (in AWS, the
// application secret's username and password) and grants it exactly what the code needs:
// CONNECT on the database, USAGE on schema public, SELECT, INSERT, UPDATE and DELETE on every
// table of public except schema_migrations, and USAGE on its sequences. The role owns
// nothing, so it can neither DROP, ALTER nor TRUNCATE a table, nor create one (Postgres 15
// and later give PUBLIC no CREATE on public). Run it as the tables' owner after Migrate: the
// grants cover the tables that exist when it runs. Running it again is harmless; it sets the
// password again (as a SCRAM-SHA-256 verifier: the password itself is never sent).
func EnsureAppRole(ctx context.Context, pool *pgxpool.Pool, name, password string) error {
	if !roleName.MatchString(name) {
		return fmt.Errorf("ensure app role: %q is not a plain lower-case role name", name)
	}
	if password == "" {
		return fmt.Errorf("ensure app role %s: empty password", name)
	}
	verifier, err := newSCRAMVerifier(password)
	if err != nil {
		return fmt.Errorf("ensure app role %s: %w", name, err)
	}
	role := pgx.Identifier{name}.Sanitize()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, appRoleLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
			return fmt.Errorf("look up role: %w", err)
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		// DDL takes no parameters; the verifier is base64, '$' and ':' only (checked when built).
		if _, err := tx.Exec(ctx, fmt.Sprintf(`%s ROLE %s LOGIN PASSWORD '%s'`, verb, role, verifier)); err != nil {
			return fmt.Errorf("%s role: %w", strings.ToLower(verb), err)
		}
		var db string
		if err := tx.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return fmt.Errorf("current database: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1`)
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		stmts := []string{
			fmt.Sprintf(`GRANT CONNECT ON DATABASE %s TO %s`, pgx.Identifier{db}.Sanitize(), role),
			fmt.Sprintf(`GRANT USAGE ON SCHEMA public TO %s`, role),
			fmt.Sprintf(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO %s`, role),
		}
		if len(tables) > 0 {
			quoted := make([]string, len(tables))
			for i, t := range tables {
				quoted[i] = pgx.Identifier{"public", t}.Sanitize()
			}
			stmts = append(stmts, fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %s`, strings.Join(quoted, ", "), role))
		}
		stmts = append(stmts, fmt.Sprintf(`REVOKE ALL ON TABLE public.schema_migrations FROM %s`, role))
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", strings.SplitN(s, " TO ", 2)[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure app role %s: %w", name, translate(err))
	}
	return nil
}

// newSCRAMVerifier returns password's SCRAM-SHA-256 verifier with a fresh random salt.
func newSCRAMVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	return scramVerifier(password, salt, scramIterations)
}

// scramVerifier is the verifier Postgres stores for a SCRAM-SHA-256 password (RFC 5802,
// RFC 7677): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64. Postgres
// stores a string of this form as it is. ASCII passwords need no SASLprep, and the generated
// secrets are ASCII; others are refused rather than hashed differently from the server.
func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	for _, r := range password {
		if r < 0x20 || r > 0x7e {
			return "", fmt.Errorf("the password must be printable ASCII")
		}
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("pbkdf2: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	v := fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key")))
	if strings.ContainsAny(v, `'\`) {
		return "", fmt.Errorf("verifier has a quote") // cannot happen: base64 has none
	}
	return v, nil
}
