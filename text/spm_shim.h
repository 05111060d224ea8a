/* The narrow C ABI of libmixserve_spm_shim, the one library that links SentencePiece.
 *
 * SentencePiece carries a private protobuf runtime that must never meet the system one, so the
 * shim is loaded at run time, isolated from the rest of the process (text/spm_library.cc,
 * docs/text.md). Only plain C types cross this boundary, and every buffer the shim hands out is
 * released by the shim itself (mixserve_spm_free_buffer): the two sides may run on different
 * copies of the C library.
 *
 * Errors: functions return NULL or -1 and leave a message that mixserve_spm_last_error()
 * returns (per thread, valid until the thread's next shim call). */
#ifndef MIXSERVE_TEXT_SPM_SHIM_H_
#define MIXSERVE_TEXT_SPM_SHIM_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shim is built with hidden visibility; only these functions are exported. */
#if defined(MIXSERVE_SPM_SHIM_BUILDING)
#define MIXSERVE_SPM_API __attribute__((visibility("default")))
#else
#define MIXSERVE_SPM_API
#endif

/* Bumped on every incompatible change of the functions below. */
#define MIXSERVE_SPM_SHIM_ABI_VERSION 1

typedef struct MixserveSpm MixserveSpm; /* one loaded model */

MIXSERVE_SPM_API int mixserve_spm_abi_version(void);
MIXSERVE_SPM_API const char* mixserve_spm_last_error(void);

/* Loads a .model file; NULL on failure. Release with mixserve_spm_free. */
MIXSERVE_SPM_API MixserveSpm* mixserve_spm_load(const char* path);
MIXSERVE_SPM_API void mixserve_spm_free(MixserveSpm* model);
/* Releases any buffer returned through an out-parameter below (NULL is fine). */
MIXSERVE_SPM_API void mixserve_spm_free_buffer(void* buffer);

/* The functions taking a const model are safe to call from several threads at once. */
MIXSERVE_SPM_API int mixserve_spm_vocab_size(const MixserveSpm* model);
/* Id of a piece, the unknown id when the piece is absent, -1 on error. */
MIXSERVE_SPM_API int mixserve_spm_piece_to_id(const MixserveSpm* model, const char* piece,
                                              size_t piece_len);

/* Encodes text into *ids (count *n_ids). Returns 0, or -1 on error. */
MIXSERVE_SPM_API int mixserve_spm_encode_ids(const MixserveSpm* model, const char* text,
                                             size_t text_len, int** ids, size_t* n_ids);
/* Encodes text into pieces: piece i is data[(i ? ends[i-1] : 0), ends[i]). Returns 0 or -1. */
MIXSERVE_SPM_API int mixserve_spm_encode_pieces(const MixserveSpm* model, const char* text,
                                                size_t text_len, char** data, size_t** ends,
                                                size_t* n_pieces);
/* Decodes ids into *text (*text_len bytes, NUL-terminated). Ids outside [0, vocab) are an
 * error. Returns 0 or -1. */
MIXSERVE_SPM_API int mixserve_spm_decode_ids(const MixserveSpm* model, const int* ids,
                                             size_t n_ids, char** text, size_t* text_len);

/* Joins pieces into text (*text_len bytes, NUL-terminated), as SentencePiece's DecodePieces:
 * piece i is data[(i ? ends[i-1] : 0), ends[i]); a piece the model lacks is kept as it is.
 * Returns 0 or -1. */
MIXSERVE_SPM_API int mixserve_spm_decode_pieces(const MixserveSpm* model, const char* data,
                                                const size_t* ends, size_t n_pieces,
                                                char** text, size_t* text_len);

/* Runs the SentencePiece trainer with n flag=value pairs (the flags of spm_train without the
 * leading dashes, e.g. "input", "model_prefix", "vocab_size"). Returns 0 or -1. Not meant to
 * run concurrently with itself. */
MIXSERVE_SPM_API int mixserve_spm_train(const char* const* keys, const char* const* values,
                                        size_t n);

#ifdef __cplusplus
}
#endif

#endif /* MIXSERVE_TEXT_SPM_SHIM_H_ */
