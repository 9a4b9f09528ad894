//! The wire layer: stream framing under RFC 6120's restricted XML, stanza routing
//! attributes, the error vocabulary, and the coalescing writer. Knows nothing of tenants or
//! routing.

pub mod acks;
pub mod error;
mod markup;
pub mod ns;
pub mod outbox;
pub mod reader;
pub mod stanza;

pub use error::{AppCondition, StanzaCondition, StreamCondition, StreamError};
pub use outbox::{Outbox, SendError};
pub use reader::{Frame, Limits, ReadError, StreamHeader, StreamReader};
pub use stanza::{Kind, Stanza};
