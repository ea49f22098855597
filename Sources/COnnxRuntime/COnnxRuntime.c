// See COnnxRuntime.h. The API table is declared below as a struct whose named members sit at the
// slot positions of ONNX Runtime's append-only `struct OrtApi`, with padding for the slots DNNScaler
// does not use; static assertions pin every used member to its slot number.
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "COnnxRuntime.h"

#include <dlfcn.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#if defined(__linux__)
#include <sched.h>
#endif
#include <stdio.h>
#include <string.h>

/// The API version requested from `GetApi`: every slot used here exists since ORT 1.13.
#define DNS_ORT_API_VERSION 13u

typedef OrtStatus *Status;
typedef void (*DNSRelease)(void *);

typedef struct DNSOrtApi {
    Status (*CreateStatus)(int code, const char *message); // 0
    int (*GetErrorCode)(const OrtStatus *status); // 1
    const char *(*GetErrorMessage)(const OrtStatus *status); // 2
    Status (*CreateEnv)(int log_severity_level, const char *log_id, OrtEnv **out); // 3
    void *unused4to6[3];
    Status (*CreateSession)(const OrtEnv *env, const char *model_path, const OrtSessionOptions *options,
                            OrtSession **out); // 7
    void *unused8;
    Status (*Run)(OrtSession *session, const void *run_options, const char *const *input_names,
                  const OrtValue *const *inputs, size_t input_count, const char *const *output_names,
                  size_t output_count, OrtValue **outputs); // 9
    Status (*CreateSessionOptions)(OrtSessionOptions **out); // 10
    void *unused11to12[2];
    Status (*SetSessionExecutionMode)(OrtSessionOptions *options, int mode); // 13
    void *unused14to22[9];
    Status (*SetSessionGraphOptimizationLevel)(OrtSessionOptions *options, int level); // 23
    Status (*SetIntraOpNumThreads)(OrtSessionOptions *options, int threads); // 24
    Status (*SetInterOpNumThreads)(OrtSessionOptions *options, int threads); // 25
    void *unused26to29[4];
    Status (*SessionGetInputCount)(const OrtSession *session, size_t *out); // 30
    Status (*SessionGetOutputCount)(const OrtSession *session, size_t *out); // 31
    void *unused32;
    Status (*SessionGetInputTypeInfo)(const OrtSession *session, size_t index, OrtTypeInfo **out); // 33
    Status (*SessionGetOutputTypeInfo)(const OrtSession *session, size_t index, OrtTypeInfo **out); // 34
    void *unused35;
    Status (*SessionGetInputName)(const OrtSession *session, size_t index, OrtAllocator *allocator,
                                  char **out); // 36
    Status (*SessionGetOutputName)(const OrtSession *session, size_t index, OrtAllocator *allocator,
                                   char **out); // 37
    void *unused38to47[10];
    Status (*CreateTensorAsOrtValue)(OrtAllocator *allocator, const int64_t *shape, size_t rank, int element_type,
                                     OrtValue **out); // 48
    Status (*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *data, size_t byte_count,
                                             const int64_t *shape, size_t rank, int element_type,
                                             OrtValue **out); // 49
    Status (*IsTensor)(const OrtValue *value, int *out); // 50
    Status (*GetTensorMutableData)(OrtValue *value, void **out); // 51
    Status (*FillStringTensor)(OrtValue *value, const char *const *strings, size_t count); // 52
    Status (*GetStringTensorDataLength)(const OrtValue *value, size_t *length); // 53
    Status (*GetStringTensorContent)(const OrtValue *value, void *data, size_t data_length, size_t *offsets,
                                     size_t offsets_count); // 54
    Status (*CastTypeInfoToTensorInfo)(const OrtTypeInfo *info, const OrtTensorTypeAndShapeInfo **out); // 55
    Status (*GetOnnxTypeFromTypeInfo)(const OrtTypeInfo *info, int *out); // 56
    void *unused57to59[3];
    Status (*GetTensorElementType)(const OrtTensorTypeAndShapeInfo *info, int *out); // 60
    Status (*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *info, size_t *out); // 61
    Status (*GetDimensions)(const OrtTensorTypeAndShapeInfo *info, int64_t *values, size_t count); // 62
    Status (*GetSymbolicDimensions)(const OrtTensorTypeAndShapeInfo *info, const char **values,
                                    size_t count); // 63
    void *unused64;
    Status (*GetTensorTypeAndShape)(const OrtValue *value, OrtTensorTypeAndShapeInfo **out); // 65
    void *unused66to68[3];
    Status (*CreateCpuMemoryInfo)(int allocator_type, int memory_type, OrtMemoryInfo **out); // 69
    void *unused70to75[6];
    Status (*AllocatorFree)(OrtAllocator *allocator, void *pointer); // 76
    void *unused77;
    Status (*GetAllocatorWithDefaultOptions)(OrtAllocator **out); // 78
    void *unused79to91[13];
    void (*ReleaseEnv)(OrtEnv *env); // 92
    void (*ReleaseStatus)(OrtStatus *status); // 93
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *info); // 94
    void (*ReleaseSession)(OrtSession *session); // 95
    void (*ReleaseValue)(OrtValue *value); // 96
    void *unused97;
    void (*ReleaseTypeInfo)(OrtTypeInfo *info); // 98
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *info); // 99
    void (*ReleaseSessionOptions)(OrtSessionOptions *options); // 100
    void *unused101to129[29];
    Status (*AddSessionConfigEntry)(OrtSessionOptions *options, const char *key, const char *value); // 130
} DNSOrtApi;

typedef struct DNSOrtApiBase {
    const DNSOrtApi *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} DNSOrtApiBase;

#define DNS_ASSERT_SLOT(member, slot)                                                                           \
    _Static_assert(offsetof(DNSOrtApi, member) == (slot) * sizeof(void *), #member " must be OrtApi slot " #slot)

DNS_ASSERT_SLOT(CreateStatus, 0);
DNS_ASSERT_SLOT(GetErrorCode, 1);
DNS_ASSERT_SLOT(GetErrorMessage, 2);
DNS_ASSERT_SLOT(CreateEnv, 3);
DNS_ASSERT_SLOT(CreateSession, 7);
DNS_ASSERT_SLOT(Run, 9);
DNS_ASSERT_SLOT(CreateSessionOptions, 10);
DNS_ASSERT_SLOT(SetSessionExecutionMode, 13);
DNS_ASSERT_SLOT(SetSessionGraphOptimizationLevel, 23);
DNS_ASSERT_SLOT(SetIntraOpNumThreads, 24);
DNS_ASSERT_SLOT(SetInterOpNumThreads, 25);
DNS_ASSERT_SLOT(SessionGetInputCount, 30);
DNS_ASSERT_SLOT(SessionGetOutputCount, 31);
DNS_ASSERT_SLOT(SessionGetInputTypeInfo, 33);
DNS_ASSERT_SLOT(SessionGetOutputTypeInfo, 34);
DNS_ASSERT_SLOT(SessionGetInputName, 36);
DNS_ASSERT_SLOT(SessionGetOutputName, 37);
DNS_ASSERT_SLOT(CreateTensorAsOrtValue, 48);
DNS_ASSERT_SLOT(CreateTensorWithDataAsOrtValue, 49);
DNS_ASSERT_SLOT(IsTensor, 50);
DNS_ASSERT_SLOT(GetTensorMutableData, 51);
DNS_ASSERT_SLOT(FillStringTensor, 52);
DNS_ASSERT_SLOT(GetStringTensorDataLength, 53);
DNS_ASSERT_SLOT(GetStringTensorContent, 54);
DNS_ASSERT_SLOT(CastTypeInfoToTensorInfo, 55);
DNS_ASSERT_SLOT(GetOnnxTypeFromTypeInfo, 56);
DNS_ASSERT_SLOT(GetTensorElementType, 60);
DNS_ASSERT_SLOT(GetDimensionsCount, 61);
DNS_ASSERT_SLOT(GetDimensions, 62);
DNS_ASSERT_SLOT(GetSymbolicDimensions, 63);
DNS_ASSERT_SLOT(GetTensorTypeAndShape, 65);
DNS_ASSERT_SLOT(CreateCpuMemoryInfo, 69);
DNS_ASSERT_SLOT(AllocatorFree, 76);
DNS_ASSERT_SLOT(GetAllocatorWithDefaultOptions, 78);
DNS_ASSERT_SLOT(ReleaseEnv, 92);
DNS_ASSERT_SLOT(ReleaseStatus, 93);
DNS_ASSERT_SLOT(ReleaseMemoryInfo, 94);
DNS_ASSERT_SLOT(ReleaseSession, 95);
DNS_ASSERT_SLOT(ReleaseValue, 96);
DNS_ASSERT_SLOT(ReleaseTypeInfo, 98);
DNS_ASSERT_SLOT(ReleaseTensorTypeAndShapeInfo, 99);
DNS_ASSERT_SLOT(ReleaseSessionOptions, 100);
DNS_ASSERT_SLOT(AddSessionConfigEntry, 130);

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const DNSOrtApi *volatile api = NULL;
static const char *version_string = "";
static char loaded_path[4096] = "";

/// Checks the slot layout against the loaded library: a status made through slot 0 must read back
/// through slots 1, 2 and 93. A wrong table would fail here instead of crashing later.
static int self_check(const DNSOrtApi *table, char *error, size_t capacity) {
    static const char probe[] = "dnnscaler slot self-check";
    OrtStatus *status = table->CreateStatus(2 /* ORT_INVALID_ARGUMENT */, probe);
    if (status == NULL) {
        snprintf(error, capacity, "ONNX Runtime self-check failed: CreateStatus returned NULL");
        return 1;
    }
    int code = table->GetErrorCode(status);
    const char *message = table->GetErrorMessage(status);
    int matches = code == 2 && message != NULL && strcmp(message, probe) == 0;
    table->ReleaseStatus(status);
    if (!matches) {
        snprintf(error, capacity, "ONNX Runtime self-check failed: the library's API table does not match");
        return 1;
    }
    return 0;
}

int dns_ort_load(const char *path, char *error, size_t error_capacity) {
    pthread_mutex_lock(&load_lock);
    if (api != NULL) {
        pthread_mutex_unlock(&load_lock);
        return 0;
    }
    int result = 1;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(error, error_capacity, "cannot load ONNX Runtime library %s: %s", path,
                 reason != NULL ? reason : "unknown dlopen error");
        goto done;
    }
    const DNSOrtApiBase *(*get_api_base)(void) = (const DNSOrtApiBase *(*)(void))dlsym(handle, "OrtGetApiBase");
    if (get_api_base == NULL) {
        snprintf(error, error_capacity, "%s is not an ONNX Runtime library (no OrtGetApiBase symbol)", path);
        dlclose(handle);
        goto done;
    }
    const DNSOrtApiBase *base = get_api_base();
    const DNSOrtApi *table = base != NULL ? base->GetApi(DNS_ORT_API_VERSION) : NULL;
    if (table == NULL) {
        const char *version = base != NULL ? base->GetVersionString() : "unknown";
        snprintf(error, error_capacity,
                 "ONNX Runtime %s at %s does not provide C API version %u (DNNScaler needs ONNX Runtime 1.13 or newer)",
                 version, path, DNS_ORT_API_VERSION);
        dlclose(handle);
        goto done;
    }
    if (self_check(table, error, error_capacity) != 0) {
        dlclose(handle);
        goto done;
    }
    version_string = base->GetVersionString();
    snprintf(loaded_path, sizeof(loaded_path), "%s", path);
    api = table;  // the handle stays open for the life of the process
    result = 0;
done:
    pthread_mutex_unlock(&load_lock);
    return result;
}

int dns_ort_is_loaded(void) { return api != NULL; }
const char *dns_ort_version_string(void) { return version_string; }
const char *dns_ort_loaded_path(void) { return loaded_path; }

const char *dns_ort_error_message(const OrtStatus *status) { return api->GetErrorMessage(status); }
int dns_ort_error_code(const OrtStatus *status) { return api->GetErrorCode(status); }
void dns_ort_release_status(OrtStatus *status) { api->ReleaseStatus(status); }

OrtStatus *dns_ort_create_env(int log_severity_level, const char *log_id, OrtEnv **out) {
    return api->CreateEnv(log_severity_level, log_id, out);
}
void dns_ort_release_env(OrtEnv *env) { api->ReleaseEnv(env); }
OrtStatus *dns_ort_create_session_options(OrtSessionOptions **out) { return api->CreateSessionOptions(out); }
void dns_ort_release_session_options(OrtSessionOptions *options) { api->ReleaseSessionOptions(options); }
OrtStatus *dns_ort_set_intra_op_threads(OrtSessionOptions *options, int threads) {
    return api->SetIntraOpNumThreads(options, threads);
}
OrtStatus *dns_ort_set_inter_op_threads(OrtSessionOptions *options, int threads) {
    return api->SetInterOpNumThreads(options, threads);
}
OrtStatus *dns_ort_set_graph_optimization_level(OrtSessionOptions *options, int level) {
    return api->SetSessionGraphOptimizationLevel(options, level);
}
OrtStatus *dns_ort_set_execution_mode(OrtSessionOptions *options, int mode) {
    return api->SetSessionExecutionMode(options, mode);
}
OrtStatus *dns_ort_add_session_config_entry(OrtSessionOptions *options, const char *key, const char *value) {
    return api->AddSessionConfigEntry(options, key, value);
}

OrtStatus *dns_ort_create_session(const OrtEnv *env, const char *model_path, const OrtSessionOptions *options,
                                  OrtSession **out) {
    return api->CreateSession(env, model_path, options, out);
}
void dns_ort_release_session(OrtSession *session) { api->ReleaseSession(session); }
OrtStatus *dns_ort_session_input_count(const OrtSession *session, size_t *out) {
    return api->SessionGetInputCount(session, out);
}
OrtStatus *dns_ort_session_output_count(const OrtSession *session, size_t *out) {
    return api->SessionGetOutputCount(session, out);
}

static OrtStatus *session_name(OrtStatus *(*getter)(const OrtSession *, size_t, OrtAllocator *, char **),
                               const OrtSession *session, size_t index, char **out) {
    OrtAllocator *allocator = NULL;
    OrtStatus *status = api->GetAllocatorWithDefaultOptions(&allocator);
    if (status != NULL) return status;
    return getter(session, index, allocator, out);
}
OrtStatus *dns_ort_session_input_name(const OrtSession *session, size_t index, char **out) {
    return session_name(api->SessionGetInputName, session, index, out);
}
OrtStatus *dns_ort_session_output_name(const OrtSession *session, size_t index, char **out) {
    return session_name(api->SessionGetOutputName, session, index, out);
}
void dns_ort_free_name(char *name) {
    OrtAllocator *allocator = NULL;
    OrtStatus *status = api->GetAllocatorWithDefaultOptions(&allocator);
    if (status != NULL) {
        api->ReleaseStatus(status);
        return;
    }
    status = api->AllocatorFree(allocator, name);
    if (status != NULL) api->ReleaseStatus(status);
}
OrtStatus *dns_ort_session_input_type_info(const OrtSession *session, size_t index, OrtTypeInfo **out) {
    return api->SessionGetInputTypeInfo(session, index, out);
}
OrtStatus *dns_ort_session_output_type_info(const OrtSession *session, size_t index, OrtTypeInfo **out) {
    return api->SessionGetOutputTypeInfo(session, index, out);
}
OrtStatus *dns_ort_run(OrtSession *session, const char *const *input_names, const OrtValue *const *inputs,
                       size_t input_count, const char *const *output_names, size_t output_count,
                       OrtValue **outputs) {
    return api->Run(session, NULL, input_names, inputs, input_count, output_names, output_count, outputs);
}

OrtStatus *dns_ort_type_info_onnx_type(const OrtTypeInfo *info, int *out) {
    return api->GetOnnxTypeFromTypeInfo(info, out);
}
OrtStatus *dns_ort_type_info_tensor_info(const OrtTypeInfo *info, const OrtTensorTypeAndShapeInfo **out) {
    return api->CastTypeInfoToTensorInfo(info, out);
}
void dns_ort_release_type_info(OrtTypeInfo *info) { api->ReleaseTypeInfo(info); }
OrtStatus *dns_ort_tensor_element_type(const OrtTensorTypeAndShapeInfo *info, int *out) {
    return api->GetTensorElementType(info, out);
}
OrtStatus *dns_ort_tensor_dimension_count(const OrtTensorTypeAndShapeInfo *info, size_t *out) {
    return api->GetDimensionsCount(info, out);
}
OrtStatus *dns_ort_tensor_dimensions(const OrtTensorTypeAndShapeInfo *info, int64_t *values, size_t count) {
    return api->GetDimensions(info, values, count);
}
OrtStatus *dns_ort_tensor_symbolic_dimensions(const OrtTensorTypeAndShapeInfo *info, const char **values,
                                              size_t count) {
    return api->GetSymbolicDimensions(info, values, count);
}
void dns_ort_release_tensor_type_and_shape_info(OrtTensorTypeAndShapeInfo *info) {
    api->ReleaseTensorTypeAndShapeInfo(info);
}

OrtStatus *dns_ort_create_cpu_memory_info(OrtMemoryInfo **out) {
    return api->CreateCpuMemoryInfo(1 /* OrtArenaAllocator */, 0 /* OrtMemTypeDefault */, out);
}
void dns_ort_release_memory_info(OrtMemoryInfo *info) { api->ReleaseMemoryInfo(info); }
OrtStatus *dns_ort_create_tensor_with_data(const OrtMemoryInfo *info, void *data, size_t byte_count,
                                           const int64_t *shape, size_t rank, int element_type, OrtValue **out) {
    return api->CreateTensorWithDataAsOrtValue(info, data, byte_count, shape, rank, element_type, out);
}
OrtStatus *dns_ort_tensor_mutable_data(OrtValue *value, void **out) { return api->GetTensorMutableData(value, out); }

OrtStatus *dns_ort_create_string_tensor(const int64_t *shape, size_t rank, const char *const *strings, size_t count,
                                        OrtValue **out) {
    OrtAllocator *allocator = NULL;
    OrtStatus *status = api->GetAllocatorWithDefaultOptions(&allocator);
    if (status != NULL) return status;
    OrtValue *value = NULL;
    status = api->CreateTensorAsOrtValue(allocator, shape, rank, 8 /* STRING */, &value);
    if (status != NULL) return status;
    status = api->FillStringTensor(value, strings, count);
    if (status != NULL) {
        api->ReleaseValue(value);
        return status;
    }
    *out = value;
    return NULL;
}

OrtStatus *dns_ort_string_tensor_data_length(const OrtValue *value, size_t *out) {
    return api->GetStringTensorDataLength(value, out);
}

OrtStatus *dns_ort_string_tensor_content(const OrtValue *value, void *data, size_t data_length, size_t *offsets,
                                         size_t offsets_count) {
    return api->GetStringTensorContent(value, data, data_length, offsets, offsets_count);
}
OrtStatus *dns_ort_value_type_and_shape(const OrtValue *value, OrtTensorTypeAndShapeInfo **out) {
    return api->GetTensorTypeAndShape(value, out);
}
OrtStatus *dns_ort_value_is_tensor(const OrtValue *value, int *out) { return api->IsTensor(value, out); }
void dns_ort_release_value(OrtValue *value) { api->ReleaseValue(value); }

int dns_release_free_heap_memory(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

int dns_affinity_cpus(int *cpus, int capacity) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        return -1;
    }
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++) {
        if (CPU_ISSET(cpu, &set)) {
            cpus[count++] = cpu;
        }
    }
    return count;
#else
    (void)cpus;
    (void)capacity;
    return -1;
#endif
}

int dns_set_thread_affinity(const int *cpus, int count) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int index = 0; index < count; index++) {
        if (cpus[index] < 0 || cpus[index] >= CPU_SETSIZE) {
            return EINVAL;
        }
        CPU_SET(cpus[index], &set);
    }
    // pid 0: the calling thread only; threads it creates afterwards inherit the mask.
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : errno;
#else
    (void)cpus;
    (void)count;
    return ENOSYS;
#endif
}
