//! The protobuf codec of every playhead.v1 method: prost, except that a request that does not
//! decode is the client's fault and answers INVALID_ARGUMENT (tonic's own codec says INTERNAL,
//! which would page an operator for a client's bug and invite blind retries).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Prost messages in, prost messages out.
#[derive(Debug)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(PhantomData)
    }
}

/// Encodes one message.
#[derive(Debug)]
pub struct ProtoEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows on demand, so this cannot run out of room; if it ever did it is ours.
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

/// Decodes one message.
#[derive(Debug)]
pub struct ProtoDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(src).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "the request message is not valid protobuf for this method: {e}"
            ))
        })
    }
}
