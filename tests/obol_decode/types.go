package main

// The ServiceOffer as obol-stack's verifier decodes it. Field names, JSON keys and Go types follow
// obol-stack's internal/monetizeapi/types.go (the union of its two code lines: "line A" at commit
// c16a9f60 adds payments, routes, hostname, branding, listing, async and limits; "line B" at
// commit 0d8b2d61 adds payment.method, payment.card, price.perMB, dataset and skill). Only the
// types matter to the converter: a JSON value whose kind does not fit the Go field's type fails
// the whole decode, and keys the structs do not name are ignored.

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type serviceOffer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              offerSpec   `json:"spec,omitempty"`
	Status            offerStatus `json:"status,omitempty"`
}

type offerSpec struct {
	Type             string            `json:"type,omitempty"`
	Agent            agentSpec         `json:"agent,omitempty"`
	Dataset          datasetSpec       `json:"dataset,omitempty"`
	Skill            skillSpec         `json:"skill,omitempty"`
	Model            modelSpec         `json:"model,omitempty"`
	Upstream         upstreamSpec      `json:"upstream,omitempty"`
	Payment          paymentSpec       `json:"payment"`
	Payments         []paymentSpec     `json:"payments,omitempty"`
	Listing          listingSpec       `json:"listing,omitempty"`
	Routes           []routeSpec       `json:"routes,omitempty"`
	Path             string            `json:"path,omitempty"`
	Hostname         string            `json:"hostname,omitempty"`
	Branding         *brandingSpec     `json:"branding,omitempty"`
	Provenance       map[string]string `json:"provenance,omitempty"`
	Registration     registrationSpec  `json:"registration,omitempty"`
	Async            asyncSpec         `json:"async,omitempty"`
	Limits           limitsSpec        `json:"limits,omitempty"`
	DrainAt          *metav1.Time      `json:"drainAt,omitempty"`
	DrainGracePeriod *metav1.Duration  `json:"drainGracePeriod,omitempty"`
}

type agentSpec struct {
	Ref struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"ref,omitempty"`
}

type datasetSpec struct {
	ManifestHash string `json:"manifestHash,omitempty"`
	Version      string `json:"version,omitempty"`
	FileHash     string `json:"fileHash,omitempty"`
	SizeBytes    int64  `json:"sizeBytes,omitempty"`
}

type skillSpec struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	SHA256          string `json:"sha256"`
	BundleConfigMap string `json:"bundleConfigMap"`
	DisplayName     string `json:"displayName,omitempty"`
	Description     string `json:"description,omitempty"`
}

type modelSpec struct {
	Name    string `json:"name"`
	Runtime string `json:"runtime"`
}

type upstreamSpec struct {
	Service    string `json:"service"`
	Namespace  string `json:"namespace"`
	Port       int64  `json:"port"`
	HealthPath string `json:"healthPath,omitempty"`
}

type paymentSpec struct {
	Method            string       `json:"method,omitempty"`
	Scheme            string       `json:"scheme,omitempty"`
	Network           string       `json:"network,omitempty"`
	PayTo             string       `json:"payTo,omitempty"`
	MaxTimeoutSeconds int64        `json:"maxTimeoutSeconds,omitempty"`
	Asset             assetSpec    `json:"asset,omitempty"`
	Card              *cardPayment `json:"card,omitempty"`
	Price             priceTable   `json:"price"`
}

// assetSpec is a struct, so a string asset ("usdc") cannot be decoded into it.
type assetSpec struct {
	Address        string `json:"address,omitempty"`
	Symbol         string `json:"symbol,omitempty"`
	Decimals       int64  `json:"decimals,omitempty"`
	TransferMethod string `json:"transferMethod,omitempty"`
	EIP712Name     string `json:"eip712Name,omitempty"`
	EIP712Version  string `json:"eip712Version,omitempty"`
}

type cardPayment struct {
	Provider           string   `json:"provider,omitempty"`
	Account            string   `json:"account,omitempty"`
	Currency           string   `json:"currency,omitempty"`
	NetworkID          string   `json:"networkId,omitempty"`
	PaymentMethodTypes []string `json:"paymentMethodTypes,omitempty"`
}

// priceTable: every price is a decimal string; a JSON number does not decode.
type priceTable struct {
	PerRequest string `json:"perRequest,omitempty"`
	PerMTok    string `json:"perMTok,omitempty"`
	PerHour    string `json:"perHour,omitempty"`
	PerEpoch   string `json:"perEpoch,omitempty"`
	PerMB      string `json:"perMB,omitempty"`
}

type listingSpec struct {
	Weight   int    `json:"weight,omitempty"`
	Category string `json:"category,omitempty"`
}

type routeSpec struct {
	Path      string     `json:"path"`
	Methods   []string   `json:"methods,omitempty"`
	Gate      string     `json:"gate,omitempty"`
	Price     priceTable `json:"price,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	FreeQuota int64      `json:"freeQuota,omitempty"`
}

type brandingSpec struct {
	DisplayName string `json:"displayName,omitempty"`
	Tagline     string `json:"tagline,omitempty"`
	LogoURL     string `json:"logoUrl,omitempty"`
	Theme       string `json:"theme,omitempty"`
	AccentColor string `json:"accentColor,omitempty"`
	FaviconURL  string `json:"faviconUrl,omitempty"`
	OGImageURL  string `json:"ogImageUrl,omitempty"`
	Description string `json:"description,omitempty"`
	CustomCSS   string `json:"customCss,omitempty"`
}

type registrationSpec struct {
	Enabled     bool   `json:"enabled,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Image       string `json:"image,omitempty"`
	Services    []struct {
		Name     string `json:"name"`
		Endpoint string `json:"endpoint"`
		Version  string `json:"version,omitempty"`
	} `json:"services,omitempty"`
	SupportedTrust []string          `json:"supportedTrust,omitempty"`
	Skills         []string          `json:"skills,omitempty"`
	Domains        []string          `json:"domains,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

type asyncSpec struct {
	Enabled          bool             `json:"enabled,omitempty"`
	ResultVisibility string           `json:"resultVisibility,omitempty"`
	TTL              *metav1.Duration `json:"ttl,omitempty"`
}

type limitsSpec struct {
	MaxInFlight int64 `json:"maxInFlight,omitempty"`
	RPS         int64 `json:"rps,omitempty"`
}

type offerStatus struct {
	Conditions         []condition `json:"conditions,omitempty"`
	Endpoint           string      `json:"endpoint,omitempty"`
	AgentID            string      `json:"agentId,omitempty"`
	RegistrationTxHash string      `json:"registrationTxHash,omitempty"`
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	AgentResolution    *struct {
		Model    string   `json:"model,omitempty"`
		Skills   []string `json:"skills,omitempty"`
		Runtime  string   `json:"runtime,omitempty"`
		Endpoint string   `json:"endpoint,omitempty"`
	} `json:"agentResolution,omitempty"`
}

type condition struct {
	Type               string      `json:"type"`
	Status             string      `json:"status"`
	Reason             string      `json:"reason,omitempty"`
	Message            string      `json:"message,omitempty"`
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}
