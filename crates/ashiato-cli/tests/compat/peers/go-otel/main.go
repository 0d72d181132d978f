// Command order-svc is a small order service instrumented the way the
// OpenTelemetry Go guides teach: otelhttp middleware and transport (with an
// otelhttptrace client trace), otelgrpc stats handlers, hand-made spans with
// attributes, events, errors and status, and a W3C context carried by hand
// through an in-process queue.
//
// It drives itself: it starts its three servers on free loopback ports,
// places ORDER_SVC_ORDERS orders through the HTTP front, prints one JSON line
// per order (its trace id, whether it was sampled, how it ended), shuts the
// tracer provider down (which flushes the exporter) and exits.
//
// Configuration is the standard OTEL_EXPORTER_OTLP_* environment;
// OTEL_EXPORTER_OTLP_PROTOCOL picks the exporter (grpc or http/protobuf), as
// the specification asks of every SDK. ORDER_SVC_SAMPLE_RATIO, when set,
// samples with TraceIDRatioBased behind ParentBased.
//
// Orders fail on purpose: every third is declined by the payment service,
// and the customer of every seventh is unknown to the user service.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/httptrace/otelhttptrace"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

const (
	serviceName    = "order-svc"
	serviceVersion = "1.4.2"
	environment    = "compat"
	// unknownCustomer has no row in the user repository.
	unknownCustomer = 999
	// declineAbove is the amount the payment service refuses.
	declineAbove = 1000.0
)

var tracer = otel.Tracer("ashiato.test/order-svc")

func main() {
	if err := run(); err != nil {
		log.Fatalf("order-svc: %v", err)
	}
}

func run() error {
	ctx := context.Background()
	// An export the collector refused must fail the run: the SDK only
	// logs it, and a test would then wait for spans that never come.
	var (
		mu           sync.Mutex
		exportErrors []error
	)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Printf("order-svc: opentelemetry: %v", err)
		mu.Lock()
		defer mu.Unlock()
		exportErrors = append(exportErrors, err)
	}))
	provider, err := newTracerProvider(ctx)
	if err != nil {
		return err
	}
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))

	users, err := startUsers()
	if err != nil {
		return err
	}
	defer users.Stop()
	payments, err := startHTTP(otelhttp.NewHandler(paymentsMux(), "payments"))
	if err != nil {
		return err
	}
	defer payments.Close()

	conn, err := grpc.NewClient(users.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(jsonCodec{}.Name())))
	if err != nil {
		return err
	}
	defer conn.Close()
	shop := newShop(conn, "http://"+payments.addr)
	defer shop.Close()
	front, err := startHTTP(otelhttp.NewHandler(shop.mux(), "front"))
	if err != nil {
		return err
	}
	defer front.Close()

	orders := 8
	if text := os.Getenv("ORDER_SVC_ORDERS"); text != "" {
		if orders, err = strconv.Atoi(text); err != nil {
			return fmt.Errorf("ORDER_SVC_ORDERS: %w", err)
		}
	}
	for i := 1; i <= orders; i++ {
		if err := placeOrder("http://"+front.addr, i); err != nil {
			return err
		}
	}
	// Shutdown flushes the batch processor: every span is acknowledged
	// by the collector when it returns.
	shutdown, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := provider.Shutdown(shutdown); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(exportErrors...)
}

// newTracerProvider exports over the protocol OTEL_EXPORTER_OTLP_PROTOCOL
// names; both exporters read the endpoint from the environment themselves.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	var exporter sdktrace.SpanExporter
	var err error
	switch protocol := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); protocol {
	case "grpc":
		exporter, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exporter, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("unsupported OTEL_EXPORTER_OTLP_PROTOCOL %q", protocol)
	}
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(
		semconv.SchemaURL,
		semconv.ServiceName(serviceName),
		semconv.ServiceVersion(serviceVersion),
		semconv.DeploymentEnvironmentNameKey.String(environment),
	))
	if err != nil {
		return nil, err
	}
	options := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	}
	if text := os.Getenv("ORDER_SVC_SAMPLE_RATIO"); text != "" {
		ratio, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("ORDER_SVC_SAMPLE_RATIO: %w", err)
		}
		options = append(options, sdktrace.WithSampler(
			sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	}
	return sdktrace.NewTracerProvider(options...), nil
}

// listener is a server on a free loopback port.
type listener struct {
	addr  string
	close func()
}

func (l listener) Close() { l.close() }

func startHTTP(handler http.Handler) (listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return listener{}, err
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(ln) }()
	return listener{addr: ln.Addr().String(), close: func() { _ = server.Close() }}, nil
}

// placeOrder is the customer: a plain client, so the front's server span
// is the root of each order's trace.
func placeOrder(front string, i int) error {
	order := orderFor(i)
	body, _ := json.Marshal(order)
	response, err := http.Post(front+"/orders/"+order.ID, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer response.Body.Close()
	_, _ = io.Copy(io.Discard, response.Body)
	line, _ := json.Marshal(map[string]any{
		"order_id": order.ID,
		"trace_id": response.Header.Get("X-Trace-Id"),
		"sampled":  response.Header.Get("X-Trace-Sampled") == "true",
		"status":   response.StatusCode,
		"failure":  response.Header.Get("X-Failure"),
	})
	fmt.Println(string(line))
	return nil
}

type order struct {
	ID         string  `json:"id"`
	CustomerID int     `json:"customer_id"`
	Amount     float64 `json:"amount"`
	Items      int     `json:"items"`
}

func orderFor(i int) order {
	o := order{ID: fmt.Sprintf("ord-%04d", i), CustomerID: 100 + i, Amount: 19.5 * float64(i), Items: i%4 + 1}
	if i%3 == 0 {
		o.Amount = declineAbove + 250.75
	}
	if i%7 == 0 {
		o.CustomerID = unknownCustomer
	}
	return o
}

// --- the front: orders ---------------------------------------------------

type shop struct {
	users    *grpc.ClientConn
	payments string
	client   *http.Client
	queue    chan message
}

func newShop(users *grpc.ClientConn, payments string) *shop {
	s := &shop{
		users:    users,
		payments: payments,
		client: &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
			otelhttp.WithClientTrace(func(ctx context.Context) *httptrace.ClientTrace {
				return otelhttptrace.NewClientTrace(ctx)
			}))},
		queue: make(chan message),
	}
	go s.confirmations()
	return s
}

func (s *shop) Close() { close(s.queue) }

func (s *shop) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}", s.handleOrder)
	return mux
}

func (s *shop) handleOrder(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	spanContext := trace.SpanContextFromContext(ctx)
	w.Header().Set("X-Trace-Id", spanContext.TraceID().String())
	w.Header().Set("X-Trace-Sampled", strconv.FormatBool(spanContext.IsSampled()))
	var o order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID != r.PathValue("id") {
		http.Error(w, "bad order", http.StatusBadRequest)
		return
	}
	err := s.processOrder(ctx, o)
	var declined *PaymentDeclinedError
	var unknown UserNotFoundError
	switch {
	case errors.As(err, &declined):
		w.Header().Set("X-Failure", "payment_declined")
		http.Error(w, err.Error(), http.StatusPaymentRequired)
	case errors.As(err, &unknown):
		w.Header().Set("X-Failure", "user_not_found")
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}

func (s *shop) processOrder(ctx context.Context, o order) error {
	ctx, span := tracer.Start(ctx, "process_order", trace.WithAttributes(
		attribute.String("order.id", o.ID),
		attribute.Float64("order.amount", o.Amount),
		attribute.Int("customer.id", o.CustomerID),
	))
	defer span.End()

	span.AddEvent("validating_order", trace.WithAttributes(attribute.Int("order.items", o.Items)))
	user, err := s.getUser(ctx, o.CustomerID)
	if err != nil {
		// the user service recorded the error where it happened
		span.SetStatus(codes.Error, "customer lookup failed")
		return err
	}
	span.AddEvent("order_validated", trace.WithAttributes(
		attribute.String("customer.tier", user.Tier),
		attribute.Bool("order.priority", user.Tier == "gold"),
	))
	if err := s.processPayment(ctx, o); err != nil {
		span.SetStatus(codes.Error, "payment failed")
		return err
	}
	s.publishConfirmation(ctx, o)
	span.SetStatus(codes.Ok, "")
	return nil
}

func (s *shop) getUser(ctx context.Context, id int) (*user, error) {
	var reply user
	err := s.users.Invoke(ctx, "/orders.Users/GetUser", &getUserRequest{ID: id}, &reply)
	if status.Code(err) == grpccodes.NotFound {
		return nil, UserNotFoundError{ID: id}
	}
	return &reply, err
}

// PaymentDeclinedError is what a refused charge becomes.
type PaymentDeclinedError struct {
	OrderID string
	Reason  string
}

func (e *PaymentDeclinedError) Error() string {
	return fmt.Sprintf("payment declined for order %s: %s", e.OrderID, e.Reason)
}

func (s *shop) processPayment(ctx context.Context, o order) error {
	ctx, span := tracer.Start(ctx, "process_payment", trace.WithAttributes(
		attribute.String("payment.provider", "acme-pay"),
		attribute.Float64("payment.amount", o.Amount),
	))
	defer span.End()
	err := s.charge(ctx, o)
	if err != nil {
		span.RecordError(err, trace.WithStackTrace(true))
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (s *shop) charge(ctx context.Context, o order) error {
	body, _ := json.Marshal(map[string]any{"order_id": o.ID, "amount": o.Amount})
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, s.payments+"/charge", bytes.NewReader(body))
	if err != nil {
		return err
	}
	request.Header.Set("Content-Type", "application/json")
	response, err := s.client.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	reason, _ := io.ReadAll(response.Body)
	switch response.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusPaymentRequired:
		return &PaymentDeclinedError{OrderID: o.ID, Reason: string(bytes.TrimSpace(reason))}
	default:
		return fmt.Errorf("payment service answered %s", response.Status)
	}
}

// --- a hand-propagated hop: an in-process queue --------------------------

// message carries its trace context in headers, as a broker message would.
type message struct {
	headers map[string]string
	orderID string
	done    chan struct{}
}

func (s *shop) publishConfirmation(ctx context.Context, o order) {
	ctx, span := tracer.Start(ctx, "order-confirmations publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "inproc"),
			attribute.String("messaging.destination.name", "order-confirmations"),
			attribute.String("messaging.operation.type", "send"),
		))
	headers := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, headers)
	done := make(chan struct{})
	s.queue <- message{headers: headers, orderID: o.ID, done: done}
	span.End()
	// the order is confirmed before the request ends (and its trace is whole)
	<-done
}

func (s *shop) confirmations() {
	for msg := range s.queue {
		ctx := otel.GetTextMapPropagator().Extract(context.Background(), propagation.MapCarrier(msg.headers))
		_, span := tracer.Start(ctx, "order-confirmations process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "inproc"),
				attribute.String("messaging.destination.name", "order-confirmations"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("order.id", msg.orderID),
			))
		span.End()
		close(msg.done)
	}
}

// --- payments: a second HTTP service -------------------------------------

func paymentsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charge", func(w http.ResponseWriter, r *http.Request) {
		var charge struct {
			OrderID string  `json:"order_id"`
			Amount  float64 `json:"amount"`
		}
		if err := json.NewDecoder(r.Body).Decode(&charge); err != nil {
			http.Error(w, "bad charge", http.StatusBadRequest)
			return
		}
		if charge.Amount > declineAbove {
			http.Error(w, "insufficient funds", http.StatusPaymentRequired)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

// --- users: a gRPC service without generated code ------------------------

// jsonCodec lets a hand-registered gRPC service exchange plain structs.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

type getUserRequest struct {
	ID int `json:"id"`
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// UserNotFoundError is the repository's answer for an unknown id.
type UserNotFoundError struct{ ID int }

func (e UserNotFoundError) Error() string { return fmt.Sprintf("user %d not found", e.ID) }

type usersServer interface {
	GetUser(context.Context, *getUserRequest) (*user, error)
}

type userRepository struct{}

func (userRepository) GetUser(ctx context.Context, request *getUserRequest) (*user, error) {
	_, span := tracer.Start(ctx, "get_user", trace.WithAttributes(
		attribute.String("db.type", "postgresql"),
		attribute.Int("db.user_id", request.ID),
	))
	defer span.End()
	if request.ID == unknownCustomer {
		err := UserNotFoundError{ID: request.ID}
		span.RecordError(err, trace.WithStackTrace(true))
		span.SetStatus(codes.Error, err.Error())
		return nil, status.Error(grpccodes.NotFound, err.Error())
	}
	tier := "silver"
	if request.ID%2 == 0 {
		tier = "gold"
	}
	return &user{ID: request.ID, Name: fmt.Sprintf("customer %d", request.ID), Tier: tier}, nil
}

var usersService = grpc.ServiceDesc{
	ServiceName: "orders.Users",
	HandlerType: (*usersServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "GetUser",
		Handler: func(srv any, ctx context.Context, decode func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var request getUserRequest
			if err := decode(&request); err != nil {
				return nil, err
			}
			return srv.(usersServer).GetUser(ctx, &request)
		},
	}},
}

type grpcListener struct {
	addr   string
	server *grpc.Server
}

func (l grpcListener) Stop() { l.server.Stop() }

func startUsers() (grpcListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return grpcListener{}, err
	}
	server := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()))
	server.RegisterService(&usersService, userRepository{})
	go func() { _ = server.Serve(ln) }()
	return grpcListener{addr: ln.Addr().String(), server: server}, nil
}
