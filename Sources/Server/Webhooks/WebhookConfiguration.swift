extension WebhookDispatcher.Configuration {
    /// Parses `cleanroomd serve`'s `--webhook-…` values (nil = not given); errors name the option.
    public init(allowHTTP: Bool, allowNetworks: [String], caFile: String?, retryDelay: Double?) throws {
        self.init()
        var networks: [IPNetwork] = []
        for cidr in allowNetworks {
            do {
                networks.append(try IPNetwork(cidr: cidr))
            } catch {
                throw ConfigurationError("--webhook-allow-network \(cidr) is not a network such as 10.1.0.0/16 or fd00::/8")
            }
        }
        target = WebhookTargetPolicy(allowHTTP: allowHTTP, allowedNetworks: networks)
        caBundlePath = caFile
        if let retryDelay {
            guard retryDelay >= 1, retryDelay <= maxRetryDelay else {
                throw ConfigurationError("--webhook-retry-delay must be from 1 to \(Int(maxRetryDelay)) seconds")
            }
            self.retryDelay = retryDelay
        }
    }
}
