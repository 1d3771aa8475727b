package stack

import (
	"fmt"
	"sort"
	"strings"
)

// InstanceClass is an RDS for PostgreSQL instance class the stack supports, with the
// max_connections its default parameter group gives it: LEAST({DBInstanceClassMemory/9531392},
// 5000), where DBInstanceClassMemory is the class's memory less what RDS keeps for itself. The
// numbers are rounded down from what instances of these sizes report (`SHOW max_connections`);
// Props.DBMaxConnections replaces the number when the instance says otherwise.
type InstanceClass struct {
	// Name is the class without "db." ("t4g.micro").
	Name string
	// MemoryGiB is the class's memory.
	MemoryGiB float64
	// MaxConnections is the default max_connections, rounded down.
	MaxConnections int
}

// InstanceClasses is every class Props.DBInstanceClass may name, smallest first.
var InstanceClasses = []InstanceClass{
	{"t4g.micro", 1, 80},
	{"t4g.small", 2, 180},
	{"t4g.medium", 4, 400},
	{"t4g.large", 8, 820},
	{"m7g.large", 8, 820},
	{"r7g.large", 16, 1650},
	{"m7g.xlarge", 16, 1650},
	{"r7g.xlarge", 32, 3300},
}

// DefaultInstanceClass is the instance class when Props.DBInstanceClass is "".
const DefaultInstanceClass = "t4g.micro"

// DefaultProxyMaxConnectionsPercent is the proxy's share of max_connections: the rest is for
// RDS's reserved superuser slots (superuser_reserved_connections and rds.rds_superuser_reserved_connections,
// five together) and an operator's session.
const DefaultProxyMaxConnectionsPercent = 90

// DefaultAccountConcurrency is the Lambda concurrency quota of a fresh account and region;
// Props.AccountConcurrency says what yours is after raising it ("Before the drop").
const DefaultAccountConcurrency = 1000

// unreservedFloor is what the defaults leave unreserved in the account: AWS requires 100, and
// wsconnect, broadcast and the CDK's helper functions draw from it.
const unreservedFloor = 200

// instanceClass returns the named class or panics with the supported ones.
func instanceClass(name string) InstanceClass {
	for _, c := range InstanceClasses {
		if c.Name == name {
			return c
		}
	}
	names := make([]string, len(InstanceClasses))
	for i, c := range InstanceClasses {
		names[i] = c.Name
	}
	panic(fmt.Sprintf("DBInstanceClass %q: use one of %s (infra/stack/budget.go), or add the class with its max_connections", name, strings.Join(names, ", ")))
}

// Budget is the Postgres connection budget of the stack: what the proxy may open, and what
// the functions may ask of it at most (every reserved environment holding a full pool).
type Budget struct {
	Class InstanceClass
	// MaxConnections is the instance's max_connections (the class's, or Props.DBMaxConnections).
	MaxConnections int
	// ProxyPercent is the proxy's MaxConnectionsPercent.
	ProxyPercent int
	// ProxyConnections is floor(MaxConnections × ProxyPercent / 100): what the proxy opens at most.
	ProxyConnections int
	// Concurrency is each function's reserved concurrency (0: unreserved, no Postgres).
	Concurrency map[string]int
	// Demand is Σ Concurrency[f] × DBMaxConns(f) over the functions that use Postgres.
	Demand int
}

// Lines is the budget as a table, one line per function that uses Postgres and a total.
func (b Budget) Lines() []string {
	out := []string{fmt.Sprintf("db.%s: max_connections %d, proxy %d%% = %d connections", b.Class.Name, b.MaxConnections, b.ProxyPercent, b.ProxyConnections)}
	for _, f := range Functions {
		if f.Postgres {
			n := b.Concurrency[f.Name]
			out = append(out, fmt.Sprintf("  %-9s %4d × %d = %4d", f.Name, n, f.DBMaxConns, n*f.DBMaxConns))
		}
	}
	return append(out, fmt.Sprintf("  total               %4d of %d", b.Demand, b.ProxyConnections))
}

// fixedConcurrency is the reserved concurrency of the functions whose load does not grow with
// a sale: one sweep and one janitor at a time, one migration, the fulfillment queue's
// consumers (its event source's MaxConcurrency), and an admin or two.
var fixedConcurrency = map[string]int{"migrate": 1, "expire": 1, "janitor": 1, "fulfill": 5, "admin": 2}

// saleShares divides what is left of the budget among the functions a sale loads.
var saleShares = []struct {
	name  string
	share float64
}{{"reserve", 0.55}, {"checkout", 0.30}, {"webhook", 0.15}}

// NewBudget computes the stack's connection budget and reserved concurrency: the fixed
// functions first, then the rest of the proxy's connections shared among reserve, checkout
// and webhook (capped so that the account keeps unreservedFloor unreserved), then the
// overrides. It panics when the result does not fit: the sum over the functions that use
// Postgres of reserved concurrency × pool size must not exceed the proxy's connections.
func NewBudget(p Props) Budget {
	class := instanceClass(p.DBInstanceClass)
	b := Budget{Class: class, MaxConnections: class.MaxConnections, ProxyPercent: p.ProxyMaxConnectionsPercent, Concurrency: map[string]int{}}
	if p.DBMaxConnections > 0 {
		b.MaxConnections = p.DBMaxConnections
	}
	if b.ProxyPercent < 1 || b.ProxyPercent > 100 {
		panic(fmt.Sprintf("ProxyMaxConnectionsPercent %d: want 1..100", b.ProxyPercent))
	}
	b.ProxyConnections = b.MaxConnections * b.ProxyPercent / 100
	used, reserved := 0, 0
	for name, n := range fixedConcurrency {
		b.Concurrency[name] = n
		used += n * lookup(name).DBMaxConns
		reserved += n
	}
	left := b.ProxyConnections - used
	if room := p.AccountConcurrency - unreservedFloor - reserved; left > room {
		left = room
	}
	for _, s := range saleShares {
		n := int(float64(left) * s.share / float64(lookup(s.name).DBMaxConns))
		if n < 1 {
			n = 1
		}
		b.Concurrency[s.name] = n
	}
	names := make([]string, 0, len(p.Concurrency))
	for name := range p.Concurrency {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := p.Concurrency[name]
		if n < 0 {
			panic(fmt.Sprintf("Concurrency[%s] = %d: want 0 (unreserved) or more", name, n))
		}
		f := lookup(name)
		if f.Postgres && n == 0 {
			panic(fmt.Sprintf("Concurrency[%s] = 0: a function that uses Postgres needs reserved concurrency (the budget counts it)", name))
		}
		b.Concurrency[name] = n
	}
	for _, f := range Functions {
		if f.Postgres {
			b.Demand += b.Concurrency[f.Name] * f.DBMaxConns
		}
	}
	if b.Demand > b.ProxyConnections {
		panic(fmt.Sprintf("the connection budget does not fit: %d > %d\n%s\nlower the concurrency or pick a larger DBInstanceClass",
			b.Demand, b.ProxyConnections, strings.Join(b.Lines(), "\n")))
	}
	return b
}

// parseCounts parses "reserve=40,checkout=20" (the concurrency and prewarm context) into a
// map of function names to counts; a bare number applies to every name in defaults.
func parseCounts(s string, defaults []string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, count, ok := strings.Cut(part, "=")
		if !ok {
			count, name = part, ""
		} else if name == "" {
			return nil, fmt.Errorf("%q: want name=count or a count", part)
		}
		var n int
		if _, err := fmt.Sscanf(count, "%d", &n); err != nil || fmt.Sprint(n) != count {
			return nil, fmt.Errorf("%q: want name=count or a count", part)
		}
		if name == "" {
			for _, d := range defaults {
				out[d] = n
			}
			continue
		}
		found := false
		for _, f := range Functions {
			found = found || f.Name == name
		}
		if !found {
			return nil, fmt.Errorf("%q: no function %s", part, name)
		}
		out[name] = n
	}
	return out, nil
}

// ParseCounts is parseCounts for the CDK app (infra/main.go).
func ParseCounts(s string, defaults ...string) (map[string]int, error) {
	return parseCounts(s, defaults)
}

// ProxyBorrowTimeoutSeconds is how long a client waits for one of the proxy's connections:
// less than every function's timeout, so the request answers 503 rather than timing out.
const ProxyBorrowTimeoutSeconds = 5
