// Command migrate applies the database migrations and ensures the application role, once per
// deploy: the CDK stack's trigger invokes it after the database and the proxy exist and
// before the other functions and the API routes change (infra/stack/migrate.go). It is the
// only function that reads the RDS master secret; the others connect as the application role.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"lastunit/shared/config"
	"lastunit/shared/handler"
)

func main() {
	log := config.Logger()
	ctx := context.Background()
	c, err := config.Load()
	if err == nil {
		c, err = config.Resolve(ctx, c) // DATABASE_SECRET_ARN: the master secret
	}
	var role config.AppRole
	if err == nil {
		role, _, err = config.ResolveAppRole(ctx) // APP_DATABASE_SECRET_ARN
	}
	if err != nil {
		log.Error("start", "err", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler.Migrate(log, handler.MigrateJob{DatabaseURL: c.DatabaseURL, AppRole: role.Name, AppPassword: role.Password}))
}
