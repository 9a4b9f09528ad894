//! The error vocabulary of RFC 6120: stream error conditions (§4.9.3) and stanza error
//! conditions (§8.3.3), each with the wire name the RFC gives it.

use std::fmt;

/// A stream-level error condition, RFC 6120 §4.9.3. A stream error is unrecoverable: it is
/// sent after our stream header, followed by `</stream:stream>`, and the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamCondition {
    /// §4.9.3.1: the entity has sent XML that cannot be processed.
    BadFormat,
    /// §4.9.3.2: a namespace prefix is unsupported or the stream prefix is not declared.
    BadNamespacePrefix,
    /// §4.9.3.4: the peer has not generated any traffic over the stream for some time.
    ConnectionTimeout,
    /// §4.9.3.6: the 'to' address is not a domain this server hosts.
    HostUnknown,
    /// §4.9.3.7: a stanza lacks a 'to' or 'from' attribute, or its value is not an address.
    ImproperAddressing,
    /// §4.9.3.8: the server has experienced a misconfiguration or another internal error.
    InternalServerError,
    /// §4.9.3.9: the 'from' address is not one the peer is authorized to use on this stream.
    InvalidFrom,
    /// §4.9.3.10: the stream or content namespace is not one this stream supports.
    InvalidNamespace,
    /// §4.9.3.12: the entity tried to send data before the stream was authenticated, or
    /// failed to authenticate.
    NotAuthorized,
    /// §4.9.3.13: the XML is not well-formed (XML 1.0 and Namespaces in XML).
    NotWellFormed,
    /// §4.9.3.14: the entity has violated a local service policy (here: size and depth limits).
    PolicyViolation,
    /// §4.9.3.17: the server lacks the resources to serve the stream.
    ResourceConstraint,
    /// §4.9.3.18: the entity used XML that RFC 6120 §11.1 forbids (comments, processing
    /// instructions, DTDs, entity references other than the five predefined ones).
    RestrictedXml,
    /// §4.9.3.20: the server is being shut down and all active streams are being closed.
    SystemShutdown,
    /// §4.9.3.21: the error condition is not one of those defined by the other conditions.
    UndefinedCondition,
    /// §4.9.3.22: the stream is encoded in something other than UTF-8.
    UnsupportedEncoding,
    /// §4.9.3.24: a first-level child of the stream is not a stanza this stream supports.
    UnsupportedStanzaType,
    /// §4.9.3.25: the 'version' on the stream header is not one this server supports.
    UnsupportedVersion,
}

impl StreamCondition {
    /// The element name of the condition on the wire.
    pub fn as_str(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An application-specific condition, RFC 6120 §4.9.4: it qualifies a defined condition and
/// travels beside it in the stream error, in a namespace of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCondition {
    /// The stanza was larger than this server accepts: RFC 6120 §4.9.3.14's example names
    /// it with `policy-violation`.
    StanzaTooBig,
    /// XEP-0198 §4: the peer acknowledged `h` stanzas when `sent` were sent; goes with
    /// `undefined-condition`.
    HandledCountTooHigh { h: u32, sent: u32 },
}

impl AppCondition {
    /// The element as written on the wire.
    pub fn element(self) -> String {
        match self {
            AppCondition::StanzaTooBig => "<stanza-too-big xmlns='urn:xmpp:errors'/>".into(),
            AppCondition::HandledCountTooHigh { h, sent } => format!(
                "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='{h}' send-count='{sent}'/>"
            ),
        }
    }
}

/// A stream error caused by what the peer sent: the condition and a human-readable reason,
/// which goes into the `<text/>` of the stream error and into our log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{condition}: {text}")]
pub struct StreamError {
    pub condition: StreamCondition,
    pub text: String,
    /// An application-specific condition sent beside the defined one, if any.
    pub app: Option<AppCondition>,
}

impl StreamError {
    pub fn new(condition: StreamCondition, text: impl Into<String>) -> Self {
        Self {
            condition,
            text: text.into(),
            app: None,
        }
    }

    /// The same error, qualified by an application-specific condition.
    pub fn with_app(self, app: AppCondition) -> Self {
        Self {
            app: Some(app),
            ..self
        }
    }
}

/// The error type of RFC 6120 §8.3.2: what the sender should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Do not retry (the error cannot be remedied).
    Cancel,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting (the error is temporary).
    Wait,
    /// Retry after providing credentials.
    Auth,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Cancel => "cancel",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
            ErrorType::Auth => "auth",
        }
    }
}

/// A stanza-level error condition, RFC 6120 §8.3.3: the stanza is returned to its sender with
/// this condition and the stream carries on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaCondition {
    /// §8.3.3.1: the sender has sent a stanza that is malformed or unprocessable.
    BadRequest,
    /// §8.3.3.6: the server could not process the stanza because of an internal error.
    InternalServerError,
    /// §8.3.3.8: the address is not a valid XMPP address.
    JidMalformed,
    /// §8.3.3.10: the recipient or server does not allow any entity to perform the action
    /// (here: the sending tenant's privacy settings do not allow the destination).
    NotAllowed,
    /// §8.3.3.12: the entity has violated some local service policy (here: the receiving
    /// tenant's privacy settings do not accept the sender's domain).
    PolicyViolation,
    /// §8.3.3.16: a remote server or service specified in the 'to' address does not exist
    /// or cannot be resolved.
    RemoteServerNotFound,
    /// §8.3.3.17: a remote server could not be contacted within a reasonable amount of time.
    RemoteServerTimeout,
    /// §8.3.3.18: the server lacks the system resources necessary to service the request.
    ResourceConstraint,
    /// §8.3.3.19: the server does not provide the requested service (here: no link of the
    /// destination tenant is up).
    ServiceUnavailable,
}

impl StanzaCondition {
    pub fn as_str(self) -> &'static str {
        use StanzaCondition::*;
        match self {
            BadRequest => "bad-request",
            InternalServerError => "internal-server-error",
            JidMalformed => "jid-malformed",
            NotAllowed => "not-allowed",
            PolicyViolation => "policy-violation",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
        }
    }

    /// The error type RFC 6120 §8.3.3 recommends for the condition.
    pub fn error_type(self) -> ErrorType {
        use StanzaCondition::*;
        match self {
            BadRequest | JidMalformed | PolicyViolation => ErrorType::Modify,
            RemoteServerTimeout | ResourceConstraint | InternalServerError => ErrorType::Wait,
            NotAllowed | RemoteServerNotFound | ServiceUnavailable => ErrorType::Cancel,
        }
    }
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
