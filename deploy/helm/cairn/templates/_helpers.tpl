{{/* Names and labels. */}}
{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cairn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "cairn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cairn.image" -}}
{{- $repo := required "image.repository is required: the image built from deploy/Dockerfile (no image is published)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (required "image.tag (or image.digest) is required" .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "cairn.secretName" -}}
{{- required "existingSecret is required: the name of an existing Secret holding the database URL (key secretKeys.databaseURL, default database-url)" .Values.existingSecret -}}
{{- end -}}

{{- define "cairn.configPath" -}}/etc/cairn/cairnd.json{{- end -}}

{{/* The blob volume's access mode: ReadWriteMany as soon as more than one pod shares it. */}}
{{- define "cairn.accessMode" -}}
{{- $p := .Values.persistence -}}
{{- if $p.accessMode -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne $p.accessMode "ReadWriteMany") -}}
{{- fail (printf "persistence.accessMode=%s with replicaCount=%d: every replica shares --blob-dir (chunked OCI upload sessions, upload staging), so more than one replica needs ReadWriteMany (or leave accessMode empty)" $p.accessMode (int .Values.replicaCount)) -}}
{{- end -}}
{{- $p.accessMode -}}
{{- else if gt (int .Values.replicaCount) 1 -}}
ReadWriteMany
{{- else -}}
ReadWriteOnce
{{- end -}}
{{- end -}}

{{/* Checks that fail rendering with a clear message. */}}
{{- define "cairn.validate" -}}
{{- $_ := include "cairn.image" . -}}
{{- $_ := include "cairn.secretName" . -}}
{{- $_ := required "secretKeys.databaseURL is required: the key of existingSecret holding the PostgreSQL URL" .Values.secretKeys.databaseURL -}}
{{- $_ := required "keys.timestamp is required: the timestamp key URI (pkcs11:…, awskms://…, file://…)" .Values.keys.timestamp -}}
{{- $_ := required "keys.snapshot is required: the snapshot key URI" .Values.keys.snapshot -}}
{{- $_ := required "keys.recentlyClaimed is required: the recently-claimed key URI" .Values.keys.recentlyClaimed -}}
{{- range $k := concat (list .Values.keys.timestamp .Values.keys.snapshot .Values.keys.recentlyClaimed) .Values.keys.standby -}}
{{- if or (contains "pin-value=" $k) (contains "passphrase=" $k) -}}
{{- fail "a key URI carries a secret (pin-value= or passphrase=): it would be written to the ConfigMap; use pin-source=/passphrase-file= with a mounted Secret, or secretKeys.pkcs11PIN/keyPassphrase" -}}
{{- end -}}
{{- end -}}
{{- range $k := list "database_url" "blob_s3_access_key" "blob_s3_secret_key" "listen" "config" -}}
{{- if hasKey $.Values.config.extra $k -}}
{{- fail (printf "config.extra.%s is refused: secrets come from existingSecret (secretKeys), listen from config.port" $k) -}}
{{- end -}}
{{- end -}}
{{- $_ := include "cairn.accessMode" . -}}
{{- if and (not .Values.persistence.enabled) (not .Values.config.s3.bucket) -}}
{{- fail "persistence.enabled=false keeps --blob-dir in an emptyDir: every blob would be lost with the pod; set config.s3.bucket or enable persistence" -}}
{{- end -}}
{{- if and (not .Values.persistence.enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail "persistence.enabled=false with replicaCount>1: chunked OCI upload sessions live in --blob-dir and must be shared by every replica; enable persistence (ReadWriteMany)" -}}
{{- end -}}
{{- end -}}

{{/* The JSON config file: non-secret settings only. */}}
{{- define "cairn.configJSON" -}}
{{- $c := .Values.config -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int $c.port))
  "blob_dir" $c.blobDir
  "timestamp_key" .Values.keys.timestamp
  "snapshot_key" .Values.keys.snapshot
  "recently_claimed_key" .Values.keys.recentlyClaimed
  "max_blob_size" (int64 $c.maxBlobSize)
  "publish_interval" (toString $c.publishInterval)
  "log_level" $c.logLevel
  "oci_anonymous_pull" $c.ociAnonymousPull
  "no_migrate" (ternary true false .Values.migrate.enabled)
-}}
{{- if .Values.keys.standby -}}{{- $_ := set $cfg "standby_key" (join "," .Values.keys.standby) -}}{{- end -}}
{{- if $c.noPublisher -}}{{- $_ := set $cfg "no_publisher" true -}}{{- end -}}
{{- /* cairnd needs an external URL when it listens on 0.0.0.0: the OCI token realm is
     never taken from a request's Host. Default: the first Ingress host, else the
     in-cluster Service. */ -}}
{{- if $c.externalURL -}}
{{- $_ := set $cfg "external_url" $c.externalURL -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $_ := set $cfg "external_url" (printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tls))) (index .Values.ingress.hosts 0).host) -}}
{{- else -}}
{{- $port := int .Values.service.port -}}
{{- $_ := set $cfg "external_url" (printf "http://%s.%s.svc%s" (include "cairn.fullname" .) .Release.Namespace (ternary "" (printf ":%d" $port) (eq $port 80))) -}}
{{- end -}}
{{- with $c.s3 -}}
{{- if .bucket -}}
{{- $_ := set $cfg "blob_s3_bucket" .bucket -}}
{{- if .endpoint -}}{{- $_ := set $cfg "blob_s3_endpoint" .endpoint -}}{{- end -}}
{{- if .region -}}{{- $_ := set $cfg "blob_s3_region" .region -}}{{- end -}}
{{- if .prefix -}}{{- $_ := set $cfg "blob_s3_prefix" .prefix -}}{{- end -}}
{{- if .pathStyle -}}{{- $_ := set $cfg "blob_s3_path_style" true -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- with $c.rekor -}}
{{- if .url -}}
{{- $_ := set $cfg "rekor_url" .url -}}
{{- if .keyPEM -}}{{- $_ := set $cfg "rekor_key" "/etc/cairn/rekor/rekor.pub" -}}{{- else if .keyFile -}}{{- $_ := set $cfg "rekor_key" .keyFile -}}{{- end -}}
{{- if .origin -}}{{- $_ := set $cfg "rekor_origin" .origin -}}{{- end -}}
{{- if .timeout -}}{{- $_ := set $cfg "rekor_timeout" (toString .timeout) -}}{{- end -}}
{{- if .retryMax -}}{{- $_ := set $cfg "rekor_retry_max" (toString .retryMax) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := $c.extra -}}{{- $_ := set $cfg $k $v -}}{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* Secret settings as CAIRN_* variables from existingSecret. */}}
{{- define "cairn.secretEnv" -}}
{{- $secret := include "cairn.secretName" . -}}
- name: CAIRN_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ .Values.secretKeys.databaseURL | quote }}}
{{- range $env, $key := dict "CAIRN_BLOB_S3_ACCESS_KEY" .Values.secretKeys.s3AccessKey "CAIRN_BLOB_S3_SECRET_KEY" .Values.secretKeys.s3SecretKey "CAIRN_PKCS11_PIN" .Values.secretKeys.pkcs11PIN "CAIRN_KEY_PASSPHRASE" .Values.secretKeys.keyPassphrase }}
{{- if $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ $key | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod's environment: CAIRN_LISTEN must be set because the image sets it, and the
environment overrides the config file. */}}
{{- define "cairn.env" -}}
- name: CAIRN_CONFIG
  value: {{ include "cairn.configPath" . }}
- name: CAIRN_LISTEN
  value: {{ printf "0.0.0.0:%d" (int .Values.config.port) | quote }}
{{ include "cairn.secretEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn.blobVolume" -}}
- name: blobs
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-blobs" (include "cairn.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* Volumes of every pod that runs cairnd with the config file. */}}
{{- define "cairn.volumes" -}}
- name: config
  configMap:
    name: {{ include "cairn.fullname" . }}
- name: tmp
  emptyDir: {}
{{- if and .Values.config.rekor.url .Values.config.rekor.keyPEM }}
- name: rekor
  configMap:
    name: {{ include "cairn.fullname" . }}
    items: [{key: rekor.pub, path: rekor.pub}]
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn.volumeMounts" -}}
- name: config
  mountPath: /etc/cairn/cairnd.json
  subPath: cairnd.json
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and .Values.config.rekor.url .Values.config.rekor.keyPEM }}
- name: rekor
  mountPath: /etc/cairn/rekor
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn.podSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .Values.podSecurityContext | indent 2 }}
{{- end -}}
