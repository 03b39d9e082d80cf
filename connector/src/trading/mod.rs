//! Order routing to Bybit v5: signing, the private and trade streams, the order desk with its
//! limits and kill switch, and the control API.

pub mod control;
pub mod desk;
pub mod link;
pub mod msg;
pub mod sign;
