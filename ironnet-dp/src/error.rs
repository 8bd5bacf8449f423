//! Errors of the dp's control API, with dpservice's wire values.

use thiserror::Error;

/// A service error: delivered with gRPC status OK and `Status{code,
/// message}` in the response, as dpservice does. The numbers are
/// dpservice's (`dp_error.h`); the message is the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// 201: the object does not exist.
    #[error("NOT_FOUND")]
    NotFound,
    /// 202: the object exists already.
    #[error("ALREADY_EXISTS")]
    AlreadyExists,
    /// 203: wrong VNI type.
    #[error("WRONG_TYPE")]
    WrongType,
    /// 204: wrong IP version for this call.
    #[error("BAD_IPVER")]
    BadIpVersion,
    /// 205: no such interface.
    #[error("NO_VM")]
    NoVm,
    /// 206: no such VNI.
    #[error("NO_VNI")]
    NoVni,
    /// 208: a table is full.
    #[error("OUT_OF_MEMORY")]
    OutOfMemory,
    /// 209: a limit is reached.
    #[error("LIMIT_REACHED")]
    LimitReached,
    /// 301: the route exists (after masking).
    #[error("ROUTE_EXISTS")]
    RouteExists,
    /// 302: no such route.
    #[error("ROUTE_NOT_FOUND")]
    RouteNotFound,
    /// 304: the route belongs to another port (an interface route).
    #[error("ROUTE_BAD_PORT")]
    RouteBadPort,
    /// 323: the address is already a translated destination in the VNI.
    #[error("DNAT_EXISTS")]
    DnatExists,
    /// 341: the interface has no virtual IP / NAT.
    #[error("SNAT_NO_DATA")]
    SnatNoData,
    /// 343: the interface already has a virtual IP / NAT.
    #[error("SNAT_EXISTS")]
    SnatExists,
    /// 401: the underlay address is taken.
    #[error("VNF_INSERT")]
    VnfInsert,
    /// 402: the interface id is already mapped to another device.
    #[error("VM_HANDLE")]
    VmHandle,
    /// 422: no such load balancer.
    #[error("NO_LB")]
    NoLb,
    /// 423: the load balancer has the most targets it can.
    #[error("BACKIP_ADD")]
    BackIpAdd,
}

impl ServiceError {
    /// dpservice's number.
    pub fn code(self) -> u32 {
        match self {
            ServiceError::NotFound => 201,
            ServiceError::AlreadyExists => 202,
            ServiceError::WrongType => 203,
            ServiceError::BadIpVersion => 204,
            ServiceError::NoVm => 205,
            ServiceError::NoVni => 206,
            ServiceError::OutOfMemory => 208,
            ServiceError::LimitReached => 209,
            ServiceError::RouteExists => 301,
            ServiceError::RouteNotFound => 302,
            ServiceError::RouteBadPort => 304,
            ServiceError::DnatExists => 323,
            ServiceError::SnatNoData => 341,
            ServiceError::SnatExists => 343,
            ServiceError::VnfInsert => 401,
            ServiceError::VmHandle => 402,
            ServiceError::NoLb => 422,
            ServiceError::BackIpAdd => 423,
        }
    }
}
