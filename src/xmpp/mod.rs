//! The wire layer: stream framing under RFC 6120's restricted XML, stanza routing
//! attributes, the error vocabulary, and the coalescing writer. Knows nothing of tenants or
//! routing.

pub mod acks;
pub mod credit;
pub mod error;
mod header;
mod markup;
mod namespaces;
pub mod ns;
pub mod outbox;
pub mod reader;
pub mod receipt;
mod restricted;
pub mod stanza;
pub mod transit;
mod wellformed;

pub use error::{AppCondition, StanzaCondition, StreamCondition, StreamError};
pub use header::StreamHeader;
pub use outbox::{Outbox, SendError, Waits};
pub use reader::{Frame, Limits, ReadError, StreamReader};
pub use stanza::{Kind, Stanza};
