package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/triggers"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// MigrateTriggerTimeoutSeconds bounds the trigger's wait for the migrate function (its own
// timeout is Function.TimeoutSeconds).
const MigrateTriggerTimeoutSeconds = 600

// newMigrateTrigger invokes the migrate function (synchronously: a failed migration fails
// the deploy) once per deploy in which its code changed (it embeds the migrations): after
// Postgres, its secrets and the proxy exist, and before every other function that uses
// Postgres, the queue consumers, the schedules and the API routes and stages are created or
// updated, so new code never meets an old schema and no request arrives before the tables.
func (s *Stack) newMigrateTrigger() {
	var after []constructs.Construct
	for _, secret := range []any{s.Data.DBSecret, s.Data.AppSecret} {
		if c, ok := secret.(constructs.Construct); ok {
			after = append(after, c)
		}
	}
	if s.Data.Postgres != nil {
		after = append(after, s.Data.Postgres)
	}
	if s.Data.Proxy != nil {
		after = append(after, s.Data.Proxy)
	}
	s.MigrateTrigger = triggers.NewTrigger(s.Stack, jsii.String("MigrateTrigger"), &triggers.TriggerProps{
		Handler:                s.Functions["migrate"],
		InvocationType:         triggers.InvocationType_REQUEST_RESPONSE,
		ExecuteOnHandlerChange: jsii.Bool(true),
		Timeout:                awscdk.Duration_Seconds(jsii.Number(MigrateTriggerTimeoutSeconds)),
		ExecuteAfter:           &after,
	})
	var before []constructs.Construct
	for _, f := range Functions {
		if f.Postgres && !f.Owner {
			before = append(before, s.Functions[f.Name])
		}
	}
	for _, a := range s.Aliases {
		before = append(before, a)
	}
	if s.APIs != nil {
		before = append(before, s.APIs.HTTP, s.APIs.WebSocket, s.APIs.WebSocketStage)
		for _, r := range s.APIs.Routes {
			before = append(before, r)
		}
	}
	s.MigrateTrigger.ExecuteBefore(before...)
}
