//! The Raft network of a single-coordinator catalog: there are no peers, so every remote
//! call fails as unreachable.
//!
//! openraft needs a network factory even for one node (it is never called while the node is
//! the sole voter). A multi-coordinator deployment swaps in a tonic-based factory through
//! `RaftCatalog::start`; nothing else in the catalog depends on which network is used.

use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::RaftNetwork;
use openraft::RaftNetworkFactory;

use super::TypeConfig;

/// Why a call to a peer failed: this coordinator has no network to its peers.
#[derive(Debug, thiserror::Error)]
#[error(
    "catalog peer {target} ({address}) is unreachable: this coordinator runs a single-node \
     catalog with no Raft network"
)]
struct NoRaftNetwork {
    target: u64,
    address: String,
}

/// The network factory of a single-node catalog.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeersNetwork;

/// A "connection" to a peer that fails every call.
#[derive(Debug, Clone)]
pub struct UnreachablePeer {
    target: u64,
    address: String,
}

impl UnreachablePeer {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        tracing::warn!(
            target_node = self.target,
            address = %self.address,
            "the single-node catalog was asked to reach a Raft peer"
        );
        RPCError::Unreachable(Unreachable::new(&NoRaftNetwork {
            target: self.target,
            address: self.address.clone(),
        }))
    }
}

impl RaftNetworkFactory<TypeConfig> for NoPeersNetwork {
    type Network = UnreachablePeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        UnreachablePeer {
            target,
            address: node.addr.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for UnreachablePeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }
}
