// Command infra is lastunit's CDK app: `cdk synth` (make synth) and `cdk deploy` (make deploy)
// run it. It deploys the packages that `make package` builds into ../build/<name>.zip.
//
// Context (cdk.json or -c): prefix, stripeSecretArn, alarmEmail, production (true/false),
// logRetentionDays, buildDir, stackName, arch (arm64 or x86_64, as `make package` built),
// localstack (true: the LocalStack variant, see localstack/README.md), localstackApis
// (true: keep Cognito and API Gateway v2, which need LocalStack Pro), webDir (the pages,
// ../web) and stripePublishableKey (into the pages' config.json).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"lastunit/infra/stack"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	ctx := func(key, def string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok && v != "" {
			return v
		}
		return def
	}
	buildDir := ctx("buildDir", "../build")
	for _, name := range stack.FunctionNames() {
		if _, err := os.Stat(filepath.Join(buildDir, name+".zip")); err != nil {
			fmt.Fprintf(os.Stderr, "infra: %s.zip is missing in %s: run `make package` first\n", name, buildDir)
			os.Exit(1)
		}
	}
	days, err := strconv.Atoi(ctx("logRetentionDays", "30"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "infra: logRetentionDays must be a number of days")
		os.Exit(1)
	}
	stack.New(app, ctx("stackName", "Lastunit"), stack.Props{
		StackProps: awscdk.StackProps{
			Description: jsii.String("lastunit: scarce-stock reservations on Lambda, Postgres, Redis and SQS"),
			// Account and region come from the CLI's environment at deploy time; synth needs neither.
			Env: &awscdk.Environment{Account: envOrNil("CDK_DEFAULT_ACCOUNT"), Region: envOrNil("CDK_DEFAULT_REGION")},
		},
		Prefix:               ctx("prefix", "lastunit"),
		StripeSecretArn:      ctx("stripeSecretArn", ""),
		AlarmEmail:           ctx("alarmEmail", ""),
		Production:           ctx("production", "false") == "true",
		LogRetentionDays:     days,
		Architecture:         ctx("arch", "arm64"),
		LocalStack:           ctx("localstack", "false") == "true",
		LocalStackAPIs:       ctx("localstackApis", "false") == "true",
		WebDir:               ctx("webDir", "../web"),
		StripePublishableKey: ctx("stripePublishableKey", ""),
		Code: func(name string) awslambda.Code {
			return awslambda.Code_FromAsset(jsii.String(filepath.Join(buildDir, name+".zip")), nil)
		},
	})
	app.Synth(nil)
}

func envOrNil(name string) *string {
	if v := os.Getenv(name); v != "" {
		return jsii.String(v)
	}
	return nil
}
