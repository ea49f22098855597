// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "DNNScaler",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "DNNScaler", targets: ["DNNScaler"]),
        .executable(name: "dnnscaler", targets: ["dnnscaler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // The project's own declarations of the ONNX Runtime C API slots it uses; loaded with dlopen.
        .target(
            name: "COnnxRuntime",
            linkerSettings: [.linkedLibrary("dl")]
        ),
        .target(
            name: "DNNScaler",
            dependencies: ["COnnxRuntime"]
        ),
        .executableTarget(
            name: "dnnscaler",
            dependencies: [
                "DNNScaler",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "DNNScalerTests",
            dependencies: ["DNNScaler"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
