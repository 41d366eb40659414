package processor

import (
	"errors"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// Config configures the processor.
type Config struct {
	// Group is the Kafka consumer group. Default "pixelpipe-processor".
	Group string
	// HitsTopic, EventsTopic and DLQTopic name the topics. Defaults are the
	// schemas package's names.
	HitsTopic, EventsTopic, DLQTopic string
	// VisitorSecret keys the visitor hashes; the same secret as the edges'.
	// Required.
	VisitorSecret string
	// MaxBatch is the most hits handled per write and commit. Default 1000.
	MaxBatch int
	// MaxWait is how long a batch waits to fill. Default 20 ms.
	MaxWait time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Group:       "pixelpipe-processor",
		HitsTopic:   schemas.TopicHits,
		EventsTopic: schemas.TopicEvents,
		DLQTopic:    schemas.TopicDLQ,
		MaxBatch:    1000,
		MaxWait:     20 * time.Millisecond,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" || c.HitsTopic == "" || c.EventsTopic == "" || c.DLQTopic == "" {
		errs = append(errs, errors.New("processor group and topics must be set"))
	}
	if c.VisitorSecret == "" {
		errs = append(errs, errors.New("visitor.secret is required (the same as the edges')"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("processor.maxBatch must be at least 1"))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, errors.New("processor.maxWait must be positive"))
	}
	return errors.Join(errs...)
}
