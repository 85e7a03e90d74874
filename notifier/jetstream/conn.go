package jetstream

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/varsel/varsel/notifier/staff"
)

// Names of the streams, subjects and buckets: the public contract.
const (
	EventsStream     = "VARSEL_EVENTS"
	DeliveriesStream = "VARSEL_DELIVERIES"
	RejectedStream   = "VARSEL_REJECTED"

	EventsSubjects = "varsel.events.>"
	JobsPrefix     = "varsel.jobs."
	// WaitPrefix holds one schedule per delivery waiting for its next
	// attempt (varsel.jobs.wait.<delivery id>); the broker publishes the
	// job to its channel's subject when it is due.
	WaitPrefix       = JobsPrefix + "wait."
	RejectedSubject  = "varsel.rejected"
	OutcomePrefix    = "varsel.deliveries."
	SubscribersKV    = "varsel_subscribers"
	IncidentsKV      = "varsel_incidents"
	DeliveriesKV     = "varsel_deliveries"
	EventsKV         = "varsel_events"
	ConfigKV         = "varsel_config"
	StaffKV          = "varsel_staff"
	SessionsKV       = "varsel_sessions"
	AddressesKV      = "varsel_addresses"
	intakeConsumer   = "varsel-intake"
	dispatchConsumer = "varsel-deliver-"
)

// Config says which NATS to use.
type Config struct {
	// URL of an external server or cluster, comma-separated; empty starts
	// an embedded server.
	URL string
	// Listen is where the embedded server listens (default 127.0.0.1:4222).
	Listen string
	// DataDir holds the embedded server's JetStream store (in DataDir/jetstream).
	DataDir string
	// Replicas for streams and buckets on a cluster; 0 means 1.
	Replicas int
	// Credentials present the service to an external NATS
	// (VARSEL_NATS_CONTEXT). The embedded server makes its own.
	Credentials Credentials
	// EncryptionKey encrypts the embedded server's store at rest
	// (VARSEL_ENCRYPTION_KEY); PreviousEncryptionKey is the one it replaces.
	EncryptionKey, PreviousEncryptionKey string
	// DeliveryRetention is how long settled delivery records are kept
	// (VARSEL_DELIVERY_RETENTION); 0 means DefaultDeliveryRetention. The
	// per-event summaries stay.
	DeliveryRetention time.Duration
}

// Conn is a connection to NATS with every stream and bucket in place.
type Conn struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Server *server.Server // nil when external

	Subscribers *Subscribers
	Incidents   *Incidents
	Deliveries  *Deliveries
	Events      *Events
	Staff       *StaffAccounts
	Sessions    *StaffSessions
	Counts      *Counts
	config      jetstream.KeyValue
	// creds are the credentials this connection presented.
	creds Credentials

	logger *slog.Logger
	// onReconnect are told when the connection comes back after a loss.
	mu          sync.Mutex
	onReconnect []func()
	onClose     []func()
	// id names this connection's instance where one must be told from
	// another (the claim on a bucket move).
	idOnce sync.Once
	id     string
	// draining is set by Drain when the process begins to shut down.
	draining atomic.Bool
}

// instanceID is this instance's name for claims: random, made once.
func (c *Conn) instanceID() string {
	c.idOnce.Do(func() { c.id = rand.Text() })
	return c.id
}

// OnReconnect registers fn to be called (in its own goroutine) whenever the
// connection to NATS comes back after it was lost.
func (c *Conn) OnReconnect(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onReconnect = append(c.onReconnect, fn)
}

func (c *Conn) reconnected() {
	c.mu.Lock()
	fns := slices.Clone(c.onReconnect)
	c.mu.Unlock()
	for _, fn := range fns {
		go fn()
	}
}

// Connect starts the embedded server when cfg.URL is empty, connects, and
// creates or updates the streams and buckets. It is safe to call from many
// processes at once. Only the service calls it; tools use Dial.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*Conn, error) {
	return connect(ctx, cfg, logger, true)
}

// Dial connects to the NATS of a running service and binds to its streams
// and buckets without creating or changing any, so a CLI command never
// rewrites the service's settings. It fails with a clear error when the
// service has not set them up yet.
func Dial(ctx context.Context, url string, creds Credentials, logger *slog.Logger) (*Conn, error) {
	return connect(ctx, Config{URL: url, Credentials: creds}, logger, false)
}

// Credentials are those this connection presented: for the embedded
// server, the service's own (what varsel.json holds).
func (c *Conn) Credentials() Credentials { return c.creds }

func connect(ctx context.Context, cfg Config, logger *slog.Logger, create bool) (*Conn, error) {
	c := &Conn{logger: logger}
	opts := []nats.Option{
		nats.Name("varsel"),
		nats.CustomInboxPrefix(ServiceInbox),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "error", err)
			}
		}),
		// Asynchronous errors (a write to a node that went away, a slow
		// consumer) go to the log, not to stderr.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				logger.Warn("nats subscription error", "subject", sub.Subject, "error", err)
				return
			}
			logger.Warn("nats error", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			c.reconnected()
		}),
	}
	var err error
	if cfg.URL == "" {
		listen := cfg.Listen
		if listen == "" {
			listen = "127.0.0.1:4222"
		}
		credDir := filepath.Join(cfg.DataDir, CredentialsDir)
		var service, producer Credentials
		if service, producer, err = embeddedUsers(credDir, ""); err != nil {
			return nil, err
		}
		c.Server, err = StartServerWith(ServerConfig{StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Listen: listen,
			Service: &service, Producer: &producer, EncryptionKey: cfg.EncryptionKey, PreviousKey: cfg.PreviousEncryptionKey}, logger)
		if err != nil {
			return nil, err
		}
		if _, _, err := embeddedUsers(credDir, c.Server.ClientURL()); err != nil {
			c.Close()
			return nil, err
		}
		c.creds = service
		auth, _ := service.options()
		c.NC, err = nats.Connect("", append(append(opts, auth...), nats.InProcessServer(c.Server))...)
	} else {
		c.creds = cfg.Credentials
		auth, aerr := cfg.Credentials.options()
		if aerr != nil {
			return nil, aerr
		}
		c.NC, err = nats.Connect(cfg.URL, append(opts, auth...)...)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	// A publish whose acknowledgement is lost (a reconnect, a leader
	// change) fails after 5 s instead of blocking intake: the plan is then
	// run again (its jobs marked Seen), within seconds of the loss.
	c.JS, err = jetstream.New(c.NC, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	if create {
		retention := cfg.DeliveryRetention
		if retention <= 0 {
			retention = DefaultDeliveryRetention
		}
		err = c.setup(ctx, max(cfg.Replicas, 1), retention)
	} else {
		err = c.bind(ctx)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// buckets are every KeyValue bucket Varsel uses.
var buckets = []string{SubscribersKV, IncidentsKV, DeliveriesKV, EventsKV, ConfigKV, StaffKV, SessionsKV, RemindersKV, AddressesKV}

// bind opens the existing buckets.
func (c *Conn) bind(ctx context.Context) error {
	kvs := map[string]jetstream.KeyValue{}
	for _, name := range buckets {
		kv, err := c.JS.KeyValue(ctx, name)
		if err != nil {
			return fmt.Errorf("open bucket %s (has `varsel serve` run against this NATS?): %w", name, err)
		}
		if st, err := c.JS.Stream(ctx, "KV_"+name); err == nil && name == SubscribersKV && !st.CachedInfo().Config.DenyDelete {
			kv = erasingKV{KeyValue: kv, st: st}
		}
		kvs[name] = kv
	}
	c.useBuckets(kvs)
	return nil
}

func (c *Conn) useBuckets(kvs map[string]jetstream.KeyValue) {
	c.Subscribers = &Subscribers{kv: kvs[SubscribersKV], idx: kvs[AddressesKV], js: c.JS, last: &lastMsgs{nc: c.NC}}
	c.Incidents = &Incidents{kv: kvs[IncidentsKV], js: c.JS}
	c.Events = &Events{kv: kvs[EventsKV]}
	c.Staff = &StaffAccounts{kv: kvs[StaffKV], js: c.JS}
	c.Sessions = &StaffSessions{kv: kvs[SessionsKV]}
	c.Counts = &Counts{c: c}
	c.Deliveries = newDeliveries(kvs[DeliveriesKV], c.JS, c.Counts, c.logger)
	c.Subscribers.forget = c.Deliveries.Forget
	c.config = kvs[ConfigKV]
}

// setup creates or updates every stream and bucket idempotently.
func (c *Conn) setup(ctx context.Context, replicas int, retention time.Duration) error {
	streams := []jetstream.StreamConfig{{
		Name: EventsStream, Description: "Incident events from producers",
		Subjects: []string{EventsSubjects}, Storage: jetstream.FileStorage, Replicas: replicas,
		// Events are at most 64 KiB; a larger one up to 256 KiB still
		// arrives, to be set aside with its reason. The store is bounded so
		// a flood from a producer cannot fill the disk: past 1 GiB the
		// oldest (long planned) events go first.
		MaxAge: 90 * 24 * time.Hour, Duplicates: 24 * time.Hour, MaxMsgSize: 256 << 10, MaxBytes: 1 << 30,
	}, {
		Name: DeliveriesStream, Description: "One job per (event, subscriber, channel)",
		Subjects: []string{JobsPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: replicas,
		Retention: jetstream.WorkQueuePolicy, MaxAge: 7 * 24 * time.Hour, Duplicates: time.Hour,
		// Retries wait as schedules in the stream (NATS 2.12 message
		// schedules), not as unacknowledged jobs holding a worker's slot.
		AllowMsgSchedules: true, AllowRollup: true,
	}, {
		Name: CountsStream, Description: "Per-event delivery counts by channel and state (NATS counters)",
		Subjects: []string{CountPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: replicas,
		// A counter is its last message; older ones are history nobody reads.
		AllowMsgCounter: true, MaxMsgsPerSubject: 1, Duplicates: time.Hour,
	}, {
		Name: RemindersStream, Description: "Staff reminders of promised updates: one schedule per incident and kind, and the due ones",
		Subjects: []string{remindPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: replicas,
		Retention: jetstream.WorkQueuePolicy, AllowMsgSchedules: true, AllowRollup: true, MaxAge: 30 * 24 * time.Hour,
	}, {
		Name: LogStream, Description: "Settled delivery records, in batches per event, kept for the retention",
		Subjects: []string{LogPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: replicas,
		MaxAge: retention, Duplicates: min(2*time.Minute, retention), Compression: jetstream.S2Compression,
		// A batch rewritten on a removal keeps the time it had left.
		AllowMsgTTL: true,
	}, {
		Name: RejectedStream, Description: "Invalid events with the reason they were rejected",
		Subjects: []string{RejectedSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
		MaxAge: 90 * 24 * time.Hour, Duplicates: 24 * time.Hour, MaxBytes: 256 << 20,
	}}
	// Every stream and bucket is made at once, each by a create that is
	// turned into an update only when the stream exists with another
	// config (createOrUpdateStream): instances started together on a new
	// cluster ask for the same ones, and in NATS 2.15 an update that meets
	// a create of a replicated stream still in flight takes the create's
	// answer with it and gives none itself (nats.go's CreateOrUpdateStream
	// asks for the update first: two instances took 66–82 s to start on a
	// new three-node cluster). And a cluster just started answers nothing
	// until it has elected its meta leader, so every create asked before
	// that waited out its 5 s: JetStream is asked first, a second at a
	// time, until it answers.
	err := whileClusterForms(ctx, func() error {
		ask, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := c.JS.AccountInfo(ask)
		return err
	})
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		kvs  = map[string]jetstream.KeyValue{}
	)
	failed := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, sc := range streams {
		wg.Go(func() {
			if err := whileClusterForms(ctx, func() error { _, err := c.createOrUpdateStream(ctx, sc); return err }); err != nil {
				failed(fmt.Errorf("create stream %s: %w", sc.Name, err))
			}
		})
	}
	for _, name := range buckets {
		cfg := jetstream.KeyValueConfig{Bucket: name, History: 1, Storage: jetstream.FileStorage, Replicas: replicas}
		switch name {
		case SessionsKV:
			cfg.TTL = staff.DefaultLifetime // a session ends with its entry
		case RemindersKV:
			cfg.TTL = 7 * 24 * time.Hour // long past any redelivery
		case DeliveriesKV:
			// Deliveries not done yet; a settled one's entry expires a
			// minute after it settles, without a lasting marker.
			cfg.TTL, cfg.LimitMarkerTTL = retention, time.Second
		}
		wg.Go(func() {
			var kv jetstream.KeyValue
			err := whileClusterForms(ctx, func() (err error) {
				if name == SubscribersKV {
					kv, err = c.erasableBucket(ctx, name, replicas)
				} else {
					kv, err = c.createOrUpdateKeyValue(ctx, cfg)
				}
				return err
			})
			if err != nil {
				failed(fmt.Errorf("create bucket %s: %w", name, err))
				return
			}
			mu.Lock()
			kvs[name] = kv
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.useBuckets(kvs)
	return nil
}

// Secret returns the shared secret for link tokens: the configured one, or
// one generated by the first instance and kept in the config bucket so every
// instance signs alike.
func (c *Conn) Secret(ctx context.Context, configured string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	if _, err := c.config.Create(ctx, "secret", fresh); err != nil && !casLost(err) {
		return nil, fmt.Errorf("store secret: %w", err)
	}
	e, err := c.config.Get(ctx, "secret")
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	return e.Value(), nil
}

// Ready reports whether NATS is connected and every stream exists.
func (c *Conn) Ready(ctx context.Context) error {
	if c.draining.Load() {
		return errors.New("shutting down: finishing the sends in flight")
	}
	if !c.NC.IsConnected() {
		return errors.New("nats not connected")
	}
	if c.Deliveries != nil {
		if since, lastErr, failing := c.Deliveries.Failing(); failing && time.Since(since) > logFailingFor {
			return fmt.Errorf("delivery log not written for %s: %s", time.Since(since).Round(time.Second), lastErr)
		}
	}
	for _, name := range []string{EventsStream, DeliveriesStream, LogStream, RejectedStream} {
		if _, err := c.JS.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}

// logFailingFor is how long writes of the delivery log may fail before
// the process says it is not ready (a full disk): as long as a batch is
// tried (storeFor, longer than any election of a new leader), so a
// cluster electing one does not turn every instance unready at once.
const logFailingFor = storeFor

// Drain marks the process as shutting down: Ready fails from now on, so a
// load balancer sends nothing more while the sends in flight finish.
func (c *Conn) Drain() { c.draining.Store(true) }

// ClientURL is the URL other processes (the CLI) can reach this NATS at.
func (c *Conn) ClientURL() string {
	if c.Server != nil {
		return c.Server.ClientURL()
	}
	return c.NC.ConnectedUrlRedacted()
}

// Close closes the connection and, if embedded, shuts the server down.
// It does not drain: callers that want in-flight work finished stop their
// consumers first.
func (c *Conn) Close() {
	if c.NC != nil {
		c.NC.Close()
	}
	if c.Server != nil {
		c.Server.Shutdown()
		c.Server.WaitForShutdown()
	}
	c.mu.Lock()
	fns := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// OnClose registers fn to run after Close has closed the connection (and
// the embedded server).
func (c *Conn) OnClose(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onClose = append(c.onClose, fn)
}

// jobSubject is where jobs of one channel are published.
func jobSubject(ch string) string { return JobsPrefix + ch }

// manyJobSubject is where jobs of several deliveries of one channel are
// published, apart from the jobs of one, so that an older instance sharing
// the queue (which knows only jobs of one) never takes one: it pulls from
// jobSubject alone.
func manyJobSubject(ch string) string { return JobsPrefix + ch + manySuffix }

const manySuffix = ".many"

// dispatchConsumers are the durable consumers of a channel's jobs: of one
// delivery, and of several.
func dispatchConsumerNames[C ~string](ch C) []string {
	return []string{dispatchConsumer + string(ch), dispatchConsumer + string(ch) + "-many"}
}

// setupCallFor bounds how long set-up waits for the answer to one create
// or update of a stream or bucket before asking again.
const setupCallFor = 5 * time.Second

// createOrUpdateStream creates the stream, or updates it when it exists
// with another config; see setup for why not JS.CreateOrUpdateStream.
func (c *Conn) createOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, setupCallFor)
	defer cancel()
	st, err := c.JS.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return c.JS.UpdateStream(ctx, cfg)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errInsufficientResources {
		// NATS weighs a create's reservation (MaxBytes) against the free
		// store before it looks for the name: a stream that exists, and
		// holds its reservation already, is refused on a disk with room
		// for one copy of it only (a restart on a 2 GiB volume failed
		// every time). The stream is there: update it.
		_, ierr := c.JS.Stream(ctx, cfg.Name)
		if ierr == nil {
			return c.JS.UpdateStream(ctx, cfg)
		}
		if !errors.Is(ierr, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("%w; and looking for it: %w", err, ierr)
		}
		return nil, fmt.Errorf("%w (JetStream reserves each stream's limit, %s for %s, on the store: at most 75 %% of its disk's free space, or the server's max_file_store: give the store (VARSEL_DATA_DIR, or an external server's) more room)", err, bytesText(cfg.MaxBytes), cfg.Name)
	}
	return st, err
}

// errInsufficientResources is nats-server's JSInsufficientResourcesErr.
const errInsufficientResources = 10047

// bytesText is n bytes for a person: "1 GiB", "256 MiB", "unlimited".
func bytesText(n int64) string {
	switch {
	case n <= 0:
		return "no limit"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// createOrUpdateKeyValue is createOrUpdateStream for a bucket.
func (c *Conn) createOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, setupCallFor)
	defer cancel()
	kv, err := c.JS.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return c.JS.UpdateKeyValue(ctx, cfg)
	}
	return kv, err
}

// clusterFormingFor bounds how long set-up waits for a cluster whose
// nodes are still finding each other (all of them starting together after
// an outage, say).
const clusterFormingFor = 30 * time.Second

// errNotMadeYet marks what fn of whileClusterForms found missing that a
// create still in flight on the cluster will make.
var errNotMadeYet = errors.New("not made yet")

// whileClusterForms runs fn until it succeeds or fails for a reason other
// than a cluster still forming: no suitable peers yet, no meta leader yet,
// no answer from JetStream, or errNotMadeYet. (10005 is the server's "no
// suitable peers for placement", 10008 "JetStream cluster not available".)
func whileClusterForms(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(clusterFormingFor)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := fn()
		var apiErr *jetstream.APIError
		forming := errors.Is(err, errNotMadeYet) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded) ||
			(errors.As(err, &apiErr) && (apiErr.ErrorCode == 10005 || apiErr.ErrorCode == 10008 || apiErr.Code == 503))
		if err == nil || !forming || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		// Not in step with another instance doing the same.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait/2 + mathrand.N(wait)):
		}
	}
}
