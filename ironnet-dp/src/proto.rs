//! Types and service generated from `proto/dpdk.proto` (package
//! `dpdkironcore.v1`, service `DPDKironcore`).
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

tonic::include_proto!("dpdkironcore.v1");
