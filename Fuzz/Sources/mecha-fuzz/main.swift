// The libFuzzer driver: `MECHA_FUZZ_TARGET=<target> mecha-fuzz [libFuzzer flags] [corpus dirs]`.
//
// SwiftPM links an executable's own `main`, so this one hands the command line to libFuzzer's
// `LLVMFuzzerRunDriver` rather than relying on libFuzzer's `main`.
import CFuzzerDriver
import Glibc
import MechaFuzzTargets

/// The target this process fuzzes, from `MECHA_FUZZ_TARGET` (see `FuzzTarget` for the names).
nonisolated(unsafe) var selectedTarget = FuzzTarget.http

guard let name = getenv("MECHA_FUZZ_TARGET").map({ String(cString: $0) }), let target = FuzzTarget(rawValue: name) else {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    let message = Array("mecha-fuzz: set MECHA_FUZZ_TARGET to one of: \(names)\n".utf8)
    _ = write(2, message, message.count)
    exit(2)
}
selectedTarget = target

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    selectedTarget.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
exit(status)
