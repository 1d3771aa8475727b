package rooms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"lastunit/shared/shop"
)

// ErrGone is what Poster.Post returns when the connection is closed (API Gateway's
// GoneException): the caller removes it from the table.
var ErrGone = errors.New("connection gone")

// Poster sends one message to one WebSocket connection.
type Poster interface {
	Post(ctx context.Context, connID string, data []byte) error
}

// API is a Poster on the API Gateway management API (aws-sdk-go-v2).
type API struct {
	Client *apigatewaymanagementapi.Client
}

var _ Poster = (*API)(nil)

// APIConfig is how to reach the management API.
type APIConfig struct {
	// Endpoint is https://{api-id}.execute-api.{region}.amazonaws.com/{stage} in AWS, the
	// local runner's URL on one machine (WS_MANAGEMENT_ENDPOINT).
	Endpoint string
	Region   string // AWS_REGION (default us-east-1)
	// MaxConns is how many connections to the endpoint are kept open for reuse.
	MaxConns int
}

// NewAPI builds the management API client. A loopback endpoint (the local runner) gets dummy
// credentials; any other uses the default AWS credential chain.
func NewAPI(ctx context.Context, c APIConfig) (*API, error) {
	if c.Endpoint == "" {
		return nil, errors.New("the WebSocket management endpoint (WS_MANAGEMENT_ENDPOINT) is not set")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("WS_MANAGEMENT_ENDPOINT %q is not a URL", c.Endpoint)
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = c.MaxConns, c.MaxConns
	})
	opts := []func(*config.LoadOptions) error{config.WithRegion(c.Region), config.WithHTTPClient(hc)}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	client := apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(c.Endpoint)
	})
	return &API{Client: client}, nil
}

// Post sends data to the connection: ErrGone when it is closed, shop.ErrUnavailable when the
// management API cannot be reached.
func (a *API) Post(ctx context.Context, connID string, data []byte) error {
	_, err := a.Client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connID), Data: data})
	if err == nil {
		return nil
	}
	var gone *types.GoneException
	if errors.As(err, &gone) {
		return ErrGone
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 && re.HTTPStatusCode() < 500 {
		return fmt.Errorf("post to %s: %w", connID, err)
	}
	return fmt.Errorf("post to %s: %w: %w", connID, shop.ErrUnavailable, err)
}
