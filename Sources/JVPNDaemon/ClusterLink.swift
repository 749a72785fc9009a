import JVPNCore

/// What a clustered gateway's host hands to the cluster side (JVPNCluster's agent): the core's
/// store requests, and the LAN announcements that follow ownership. Every method returns at once
/// (called under the host lock); answers come back through `GatewayHost`'s fact methods.
protocol ClusterLink: AnyObject, Sendable {
    func submit(_ request: StoreRequest)
    /// This node now serves the peer's session: answer for its addresses on the LAN and say so.
    func announce(peer: Int, allowedIPs: [IPPrefix])
    /// It does not any more: stop answering for them.
    func withdraw(peer: Int, allowedIPs: [IPPrefix])
}
