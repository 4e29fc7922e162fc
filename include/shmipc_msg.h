/*  =========================================================================
    shmipc_msg - a message of zero or more frames, each in its own buffer

    Owns: its frames' buffers. Meant to be reused: reset keeps the buffers,
    so a receive loop that reuses one message allocates nothing once warm.
    =========================================================================
*/

#ifndef SHMIPC_MSG_H_INCLUDED
#define SHMIPC_MSG_H_INCLUDED

#include "shmipc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_msg_t shmipc_msg_t;

//  Create an empty message. Returns NULL with errno ENOMEM.
SHMIPC_EXPORT shmipc_msg_t *
    shmipc_msg_new (void);

//  Destroy the message and its buffers. Idempotent; nullifies the reference.
SHMIPC_EXPORT void
    shmipc_msg_destroy (shmipc_msg_t **self_p);

//  Append a frame holding a copy of size bytes. Returns 0 or -1/ENOMEM.
SHMIPC_EXPORT int
    shmipc_msg_addmem (shmipc_msg_t *self, const void *data, size_t size);

//  Append a frame of size uninitialised bytes and return where they are,
//  for the caller to fill. Returns NULL/ENOMEM (or E2BIG past
//  SHMIPC_FRAMES_MAX frames).
SHMIPC_EXPORT void *
    shmipc_msg_add_frame (shmipc_msg_t *self, size_t size);

//  Grow the last frame by size uninitialised bytes and return where they
//  start. Returns NULL/ENOMEM, or NULL/EINVAL if the message has no frame.
SHMIPC_EXPORT void *
    shmipc_msg_grow_frame (shmipc_msg_t *self, size_t size);

//  Return the number of frames.
SHMIPC_EXPORT size_t
    shmipc_msg_frames (shmipc_msg_t *self);

//  Return the sum of the frames' sizes.
SHMIPC_EXPORT size_t
    shmipc_msg_content_size (shmipc_msg_t *self);

//  Return frame index's data (NULL for an empty frame) and size.
SHMIPC_EXPORT const void *
    shmipc_msg_data (shmipc_msg_t *self, size_t index);
SHMIPC_EXPORT size_t
    shmipc_msg_size (shmipc_msg_t *self, size_t index);

//  Take frame index's buffer (from malloc; the caller frees it). The frame
//  stays in the message, empty. Returns NULL for an empty frame.
SHMIPC_EXPORT void *
    shmipc_msg_detach (shmipc_msg_t *self, size_t index);

//  Remove every frame, keeping buffers for reuse.
SHMIPC_EXPORT void
    shmipc_msg_reset (shmipc_msg_t *self);

#ifdef __cplusplus
}
#endif

#endif
