// DNNScaler's own minimal declarations of the ONNX Runtime C API (the slots it uses), loaded at
// run time with dlopen. Written from the documented, append-only layout of `struct OrtApi`;
// no ONNX Runtime header is copied or included. Each `dns_ort_*` function calls one API slot of
// the loaded library and returns the library's `OrtStatus *` (NULL means success).
#ifndef DNNSCALER_CONNXRUNTIME_H
#define DNNSCALER_CONNXRUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtAllocator OrtAllocator;

/// ONNX tensor element types (the ONNX TensorProto.DataType numbers).
typedef enum DNSOrtElementType {
    DNS_ORT_ELEMENT_UNDEFINED = 0,
    DNS_ORT_ELEMENT_FLOAT = 1,
    DNS_ORT_ELEMENT_UINT8 = 2,
    DNS_ORT_ELEMENT_INT8 = 3,
    DNS_ORT_ELEMENT_UINT16 = 4,
    DNS_ORT_ELEMENT_INT16 = 5,
    DNS_ORT_ELEMENT_INT32 = 6,
    DNS_ORT_ELEMENT_INT64 = 7,
    DNS_ORT_ELEMENT_STRING = 8,
    DNS_ORT_ELEMENT_BOOL = 9,
    DNS_ORT_ELEMENT_FLOAT16 = 10,
    DNS_ORT_ELEMENT_DOUBLE = 11,
    DNS_ORT_ELEMENT_UINT32 = 12,
    DNS_ORT_ELEMENT_UINT64 = 13,
    DNS_ORT_ELEMENT_BFLOAT16 = 16,
} DNSOrtElementType;

/// Loads the ONNX Runtime shared library at `path` (dlopen), resolves `OrtGetApiBase`, takes the
/// API table for the version this file declares and runs a self-check of the slot layout.
/// Returns 0 on success; otherwise writes a one-line reason into `error` and returns non-zero.
/// Safe to call again: once loaded, later calls return 0 (whatever path they name).
int dns_ort_load(const char *path, char *error, size_t error_capacity);

/// Whether `dns_ort_load` has succeeded in this process.
int dns_ort_is_loaded(void);

/// The loaded library's version string, e.g. "1.31.1"; "" if not loaded.
const char *dns_ort_version_string(void);

/// The path of the library that was loaded; "" if not loaded.
const char *dns_ort_loaded_path(void);

// Status handling.
const char *dns_ort_error_message(const OrtStatus *status);
int dns_ort_error_code(const OrtStatus *status);
void dns_ort_release_status(OrtStatus *status);

// Environment and session options.
OrtStatus *dns_ort_create_env(int log_severity_level, const char *log_id, OrtEnv **out);
void dns_ort_release_env(OrtEnv *env);
OrtStatus *dns_ort_create_session_options(OrtSessionOptions **out);
void dns_ort_release_session_options(OrtSessionOptions *options);
OrtStatus *dns_ort_set_intra_op_threads(OrtSessionOptions *options, int threads);
OrtStatus *dns_ort_set_inter_op_threads(OrtSessionOptions *options, int threads);
/// 0 = disable all, 1 = basic, 2 = extended, 99 = all.
OrtStatus *dns_ort_set_graph_optimization_level(OrtSessionOptions *options, int level);
/// 0 = sequential, 1 = parallel.
OrtStatus *dns_ort_set_execution_mode(OrtSessionOptions *options, int mode);
OrtStatus *dns_ort_add_session_config_entry(OrtSessionOptions *options, const char *key, const char *value);

// Sessions.
OrtStatus *dns_ort_create_session(const OrtEnv *env, const char *model_path, const OrtSessionOptions *options,
                                  OrtSession **out);
void dns_ort_release_session(OrtSession *session);
OrtStatus *dns_ort_session_input_count(const OrtSession *session, size_t *out);
OrtStatus *dns_ort_session_output_count(const OrtSession *session, size_t *out);
/// The name is allocated with the default allocator; free it with `dns_ort_free_name`.
OrtStatus *dns_ort_session_input_name(const OrtSession *session, size_t index, char **out);
OrtStatus *dns_ort_session_output_name(const OrtSession *session, size_t index, char **out);
void dns_ort_free_name(char *name);
OrtStatus *dns_ort_session_input_type_info(const OrtSession *session, size_t index, OrtTypeInfo **out);
OrtStatus *dns_ort_session_output_type_info(const OrtSession *session, size_t index, OrtTypeInfo **out);
OrtStatus *dns_ort_run(OrtSession *session, const char *const *input_names, const OrtValue *const *inputs,
                       size_t input_count, const char *const *output_names, size_t output_count,
                       OrtValue **outputs);

// Type information.
/// 1 = tensor (ONNXType); other kinds (sequence, map, ...) are not served.
OrtStatus *dns_ort_type_info_onnx_type(const OrtTypeInfo *info, int *out);
/// The returned info is owned by `info`; do not release it.
OrtStatus *dns_ort_type_info_tensor_info(const OrtTypeInfo *info, const OrtTensorTypeAndShapeInfo **out);
void dns_ort_release_type_info(OrtTypeInfo *info);
OrtStatus *dns_ort_tensor_element_type(const OrtTensorTypeAndShapeInfo *info, int *out);
OrtStatus *dns_ort_tensor_dimension_count(const OrtTensorTypeAndShapeInfo *info, size_t *out);
OrtStatus *dns_ort_tensor_dimensions(const OrtTensorTypeAndShapeInfo *info, int64_t *values, size_t count);
OrtStatus *dns_ort_tensor_symbolic_dimensions(const OrtTensorTypeAndShapeInfo *info, const char **values,
                                              size_t count);
void dns_ort_release_tensor_type_and_shape_info(OrtTensorTypeAndShapeInfo *info);

// Values.
OrtStatus *dns_ort_create_cpu_memory_info(OrtMemoryInfo **out);
void dns_ort_release_memory_info(OrtMemoryInfo *info);
/// Wraps caller-owned memory (not copied): the memory must outlive the value.
OrtStatus *dns_ort_create_tensor_with_data(const OrtMemoryInfo *info, void *data, size_t byte_count,
                                           const int64_t *shape, size_t rank, int element_type, OrtValue **out);
OrtStatus *dns_ort_tensor_mutable_data(OrtValue *value, void **out);
/// A STRING tensor of `shape` holding copies of `count` NUL-terminated `strings` (row-major), in
/// memory ONNX Runtime allocates; ONNX Runtime strings end at their first NUL.
OrtStatus *dns_ort_create_string_tensor(const int64_t *shape, size_t rank, const char *const *strings, size_t count,
                                        OrtValue **out);
/// The total bytes of a STRING tensor's elements (without terminators).
OrtStatus *dns_ort_string_tensor_data_length(const OrtValue *value, size_t *out);
/// Copies a STRING tensor's elements back to back into `data` and each one's start into `offsets`.
OrtStatus *dns_ort_string_tensor_content(const OrtValue *value, void *data, size_t data_length, size_t *offsets,
                                         size_t offsets_count);
/// The caller releases the returned info with `dns_ort_release_tensor_type_and_shape_info`.
OrtStatus *dns_ort_value_type_and_shape(const OrtValue *value, OrtTensorTypeAndShapeInfo **out);
OrtStatus *dns_ort_value_is_tensor(const OrtValue *value, int *out);
void dns_ort_release_value(OrtValue *value);

/// Not ONNX Runtime: hands the C heap's free pages back to the system (glibc `malloc_trim(0)`).
/// Returns 1 when memory was released, 0 when none was or the C library has no such call.
int dns_release_free_heap_memory(void);

/// Not ONNX Runtime: writes the CPUs the calling thread may run on, ascending, into `cpus` (at most
/// `capacity`); returns how many, or -1 where that cannot be read.
int dns_affinity_cpus(int *cpus, int capacity);

/// Not ONNX Runtime: confines the calling thread to `cpus` (threads it creates afterwards inherit
/// the set). Returns 0, or an errno value (EINVAL for a CPU outside the system's range or a set
/// the process may not use, ENOSYS off Linux).
int dns_set_thread_affinity(const int *cpus, int count);

#ifdef __cplusplus
}
#endif

#endif
