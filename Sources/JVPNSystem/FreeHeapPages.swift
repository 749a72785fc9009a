import CUDP

/// Gives the free pages inside the C heap back to the kernel.
///
/// glibc returns freed memory to the kernel only from the top of each arena; pages freed in the
/// middle stay resident. A burst of handshakes on a gateway with many peers frees many large
/// temporary copies (each publication copies the send array and the receiver map) between long-lived
/// small objects (keypairs, sessions), which leaves megabytes free but resident.
public enum FreeHeapPages {
    /// `malloc_trim(0)`: every arena's free pages are released (madvise), the top trimmed. Takes each
    /// arena's lock while it walks it; call it when the process is quiet. True if memory was released.
    @discardableResult
    public static func release() -> Bool { cprocess_heap_trim() != 0 }
}
