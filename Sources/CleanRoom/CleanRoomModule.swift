/// The domain: parties, principals, datasets, policies, approvals, jobs, the audit chain, and their storage.
public enum CleanRoomModule {}
