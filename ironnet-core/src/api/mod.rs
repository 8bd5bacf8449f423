//! The two API groups: [`networking`] (`networking.ironcore.dev`, what
//! users apply) and [`apinet`] (`core.apinet.ironcore.dev`, the controller's
//! and agents' internal objects), with the [`common`] types they share;
//! [`compute`] holds the network part of a `Machine`, [`events`] the
//! controller's Events.

pub mod apinet;
pub mod common;
pub mod compute;
pub mod events;
pub mod networking;
