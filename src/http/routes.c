/* routes.c — the REST route table: every path the server answers, in match order.
 *
 * Literal segments come before placeholders where both could match (…/timeseries/delete
 * before …/{scope}). Everything is behind a JWT except the routes marked PUBLIC.
 */
#include "http/http_int.h"

#define TM "/api/plugins/telemetry"

const http_route_t http__routes[] = {
    {"POST", "/api/auth/login", http__h_login, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/auth/token", http__h_refresh, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/auth/user", http__h_user, 0},
    {"POST", "/api/auth/logout", http__h_logout, 0},

    {"POST", "/api/device", http__h_device_save, 0},
    {"POST", "/api/device-with-credentials", http__h_device_with_creds, 0},
    {"POST", "/api/device/credentials", http__h_cred_save, 0},
    {"GET", "/api/device/{id}/credentials/info", http__h_cred_info, 0},
    {"GET", "/api/device/{id}/credentials", http__h_cred_get, 0},
    {"GET", "/api/device/{id}", http__h_device_get, 0},
    {"DELETE", "/api/device/{id}", http__h_device_delete, 0},
    {"GET", "/api/tenant/devices", http__h_devices_list, 0},
    {"GET", "/api/tenant/device", http__h_device_by_name, 0},
    {"GET", "/api/tenant/deviceInfos", http__h_device_infos_list, 0},

    {"POST", "/api/deviceProfile", http__h_profile_save, 0},
    {"POST", "/api/deviceProfile/{id}/default", http__h_profile_set_default, 0},
    {"GET", "/api/deviceProfile/names", http__h_profile_names, 0},
    {"GET", "/api/deviceProfile/{id}", http__h_profile_get, 0},
    {"DELETE", "/api/deviceProfile/{id}", http__h_profile_delete, 0},
    {"GET", "/api/deviceProfiles", http__h_profiles_list, 0},
    {"GET", "/api/deviceProfileInfos", http__h_profile_infos_list, 0},
    {"GET", "/api/deviceProfileInfo/default", http__h_profile_info_default, 0},
    {"GET", "/api/deviceProfileInfo/{id}", http__h_profile_info_get, 0},

    {"POST", "/api/otaPackage", http__h_ota_save, 0},
    {"GET", "/api/otaPackage/info/{id}", http__h_ota_info, 0},
    {"GET", "/api/otaPackage/{id}/download", http__h_ota_download, 0},
    {"GET", "/api/otaPackage/{id}", http__h_ota_info, 0}, /* OtaPackage: the info, no data */
    {"POST", "/api/otaPackage/{id}", http__h_ota_upload, 0},
    {"DELETE", "/api/otaPackage/{id}", http__h_ota_delete, 0},
    {"GET", "/api/otaPackages", http__h_ota_list, 0},
    {"GET", "/api/otaPackages/{profileId}/{type}", http__h_ota_list_profile, 0},

    {"GET", TM "/{type}/{id}/keys/timeseries", http__h_ts_keys, 0},
    {"GET", TM "/{type}/{id}/values/timeseries", http__h_ts_values, 0},
    {"GET", TM "/{type}/{id}/values/timeseries/history", http__h_ts_values, 0},
    {"POST", TM "/{type}/{id}/timeseries/{scope}", http__h_ts_save, 0},
    {"DELETE", TM "/{type}/{id}/timeseries/delete", http__h_ts_delete, 0},
    {"GET", TM "/{type}/{id}/keys/attributes", http__h_attr_keys, 0},
    {"GET", TM "/{type}/{id}/keys/attributes/{scope}", http__h_attr_keys, 0},
    {"GET", TM "/{type}/{id}/values/attributes", http__h_attr_values, 0},
    {"GET", TM "/{type}/{id}/values/attributes/{scope}", http__h_attr_values, 0},
    {"POST", TM "/{type}/{id}/attributes/{scope}", http__h_attr_save, 0},
    {"POST", TM "/{type}/{id}/{scope}", http__h_attr_save, 0},
    {"POST", TM "/{id}/{scope}", http__h_attr_save, 0},
    {"DELETE", TM "/{type}/{id}/{scope}", http__h_attr_delete, 0},
    {"DELETE", TM "/{id}/{scope}", http__h_attr_delete, 0},

    {"POST", "/api/plugins/rpc/{kind}/{id}", http__h_rpc_v1, 0},
    {"POST", "/api/rpc/{kind}/{id}", http__h_rpc_v2, 0},
    {"GET", "/api/rpc/persistent/{rpcId}", http__h_rpc_persistent_get, 0},

    /* ThingsBoard's HTTP device API: the token in the path is the credential. */
    {"POST", "/api/v1/provision", http__h_dev_provision, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/v1/{token}/telemetry", http__h_dev_telemetry, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/v1/{token}/attributes", http__h_dev_attributes_post, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/v1/{token}/attributes", http__h_dev_attributes_get, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/v1/{token}/rpc/{id}", http__h_dev_rpc_reply, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/v1/{token}/rpc", http__h_dev_client_rpc, HTTP_ROUTE_PUBLIC},
    {"POST", "/api/v1/{token}/claim", http__h_dev_claim, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/v1/{token}/firmware", http__h_dev_firmware, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/v1/{token}/software", http__h_dev_software, HTTP_ROUTE_PUBLIC},
    /* HTTP device API: long polls (device_poll.c). */
    {"GET", "/api/v1/{token}/attributes/updates", http__h_dev_attr_updates, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/v1/{token}/rpc", http__h_dev_rpc_poll, HTTP_ROUTE_PUBLIC},

    {"GET", "/api/events", http__h_events, 0},
    {"GET", "/api/coaphub/devices/status", http__h_device_status, 0},
    {"POST", "/api/coaphub/dtls/sessions/save", http__h_sessions_save, 0},
    {"GET", "/api/noauth/connectivity", http__h_connectivity, HTTP_ROUTE_PUBLIC},
    {"GET", "/metrics", http__h_metrics, HTTP_ROUTE_PUBLIC},
    {"GET", "/api/noauth/server-cert.pem", http__h_server_cert, HTTP_ROUTE_PUBLIC},
};

const size_t http__n_routes = sizeof http__routes / sizeof http__routes[0];
