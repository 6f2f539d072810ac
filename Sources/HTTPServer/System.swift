import Glibc

/// Facts about the machine.
public enum System {
    /// Online CPU cores (at least 1).
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
