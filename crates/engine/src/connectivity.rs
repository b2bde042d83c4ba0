//! What devices see of the data plane from the control plane: DescribeEndpoint (where
//! they connect) and GetThingConnectivityData (a thing's latest connection, from the
//! connection history the device gateway and the connections import record).

use palisade_model::{
    DescribeEndpointRequest, DescribeEndpointResponse, DisconnectReasonValue,
    GetThingConnectivityDataRequest, GetThingConnectivityDataResponse, Timestamp,
};

use crate::things::thing_not_found;
use crate::{required, Engine, EngineError, EngineResult, Scope};

/// The endpoint types AWS has, and which of them Palisade serves (its device gateway).
const DATA_TYPES: [&str; 2] = ["iot:Data", "iot:Data-ATS"];
const OTHER_TYPES: [&str; 2] = ["iot:CredentialProvider", "iot:Jobs"];

impl Engine {
    /// Sets the address DescribeEndpoint answers for `iot:Data` and `iot:Data-ATS`
    /// (`host` or `host:port`): where the device gateway listens, or its public name.
    /// `None` (the default) when the gateway is off: DescribeEndpoint then says so. The
    /// owner of the gateway (`palisade serve`) calls it once the listener is known.
    pub fn set_data_endpoint(&self, address: Option<String>) {
        let mut slot = self
            .inner
            .data_endpoint
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = address;
    }

    /// The address [`set_data_endpoint`](Self::set_data_endpoint) set, if any.
    pub fn data_endpoint(&self) -> Option<String> {
        self.inner
            .data_endpoint
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub async fn describe_endpoint(
        &self,
        _scope: &Scope,
        input: DescribeEndpointRequest,
    ) -> EngineResult<DescribeEndpointResponse> {
        match input.endpoint_type.as_deref() {
            None => {}
            Some(t) if DATA_TYPES.contains(&t) => {}
            Some(t) if OTHER_TYPES.contains(&t) => {
                return Err(EngineError::InvalidRequest(format!(
                    "Palisade serves no {t} endpoint: its device gateway serves the data \
                     endpoint (iot:Data-ATS or iot:Data) only."
                )))
            }
            Some(t) => {
                return Err(EngineError::InvalidRequest(format!(
                    "endpointType {t:?} is not valid; it must be one of iot:Data, \
                     iot:Data-ATS, iot:CredentialProvider, iot:Jobs."
                )))
            }
        }
        // Every account shares the one gateway, which tells accounts apart by their
        // certificates (and, for a certificate in several accounts, the TLS server name).
        let address = self.data_endpoint().ok_or_else(|| {
            EngineError::InvalidRequest(
                "Palisade's device gateway is disabled (--mqtt-listen off), so there is no \
                 data endpoint."
                    .into(),
            )
        })?;
        Ok(DescribeEndpointResponse {
            endpoint_address: Some(address),
        })
    }

    pub async fn get_thing_connectivity_data(
        &self,
        scope: &Scope,
        input: GetThingConnectivityDataRequest,
    ) -> EngineResult<GetThingConnectivityDataResponse> {
        let name = required(input.thing_name, "thingName")?;
        let thing = self
            .store()
            .get_thing(scope, &name)
            .await?
            .ok_or_else(|| thing_not_found(&name))?;
        let Some(c) = self
            .store()
            .latest_thing_connection(scope, &thing.name)
            .await?
        else {
            // Never connected: AWS answers connected=false and no session details.
            return Ok(GetThingConnectivityDataResponse {
                thing_name: Some(thing.name),
                connected: Some(false),
                ..GetThingConnectivityDataResponse::default()
            });
        };
        let connected = c.disconnected_at_ms.is_none();
        let socket = input.include_socket_information == Some(true);
        Ok(GetThingConnectivityDataResponse {
            thing_name: Some(thing.name),
            connected: Some(connected),
            timestamp: Some(Timestamp::from_millis(
                c.disconnected_at_ms.unwrap_or(c.connected_at_ms),
            )),
            disconnect_reason: c
                .disconnect_reason
                .as_deref()
                .filter(|_| !connected)
                .map(DisconnectReasonValue::from_wire),
            client_id: Some(c.client_id),
            clean_session: c.clean_session,
            keep_alive_duration: c.keep_alive_secs.and_then(|k| i32::try_from(k).ok()),
            source_ip: socket.then_some(c.source_ip),
            source_port: c
                .source_port
                .filter(|_| socket)
                .and_then(|p| i32::try_from(p).ok()),
            ..GetThingConnectivityDataResponse::default()
        })
    }
}
