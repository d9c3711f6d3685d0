// The ground: a globe whose heights come from the DEM grid `cim tile` wrote (ellipsoidal, like the tiles) and whose
// imagery is the base map made from the model's own DEM and GIS layers. Nothing is fetched from the internet.
// Underground view makes the ground translucent and lets the camera below it.
/* global Cesium */

const SAMPLES = 33; // heights per terrain tile side

function sampler(grid, rect, width, height, outside) {
  const [w, s, e, n] = rect.map(Cesium.Math.toRadians);
  const dx = (e - w) / (width - 1);
  const dy = (n - s) / (height - 1);
  return (lon, lat) => {
    if (lon < w || lon > e || lat < s || lat > n) return outside;
    const fx = (lon - w) / dx;
    const fy = (n - lat) / dy;
    const x0 = Math.min(Math.floor(fx), width - 2);
    const y0 = Math.min(Math.floor(fy), height - 2);
    const tx = fx - x0;
    const ty = fy - y0;
    const i = y0 * width + x0;
    const top = grid[i] * (1 - tx) + grid[i + 1] * tx;
    const bottom = grid[i + width] * (1 - tx) + grid[i + width + 1] * tx;
    return top * (1 - ty) + bottom * ty;
  };
}

export async function groundTerrain(ground) {
  if (!ground) return new Cesium.EllipsoidTerrainProvider();
  const h = ground.heights;
  const buffer = await (await fetch(ground.base + h.uri)).arrayBuffer();
  const heightAt = sampler(new Float32Array(buffer), ground.rectangle, h.width, h.height, h.min);
  const tiling = new Cesium.GeographicTilingScheme();
  return new Cesium.CustomHeightmapTerrainProvider({
    width: SAMPLES,
    height: SAMPLES,
    tilingScheme: tiling,
    callback: (x, y, level) => {
      const r = tiling.tileXYToRectangle(x, y, level);
      const out = new Float32Array(SAMPLES * SAMPLES);
      for (let row = 0; row < SAMPLES; row++) {
        const lat = r.north - (row / (SAMPLES - 1)) * (r.north - r.south);
        for (let col = 0; col < SAMPLES; col++) {
          out[row * SAMPLES + col] = heightAt(r.west + (col / (SAMPLES - 1)) * (r.east - r.west), lat);
        }
      }
      return out;
    },
  });
}

export async function baseMap(viewer, ground) {
  if (!ground) return null;
  // the globe ends where the model's ground does: no flat ellipsoid (or smeared edges) around it
  viewer.scene.globe.cartographicLimitRectangle = Cesium.Rectangle.fromDegrees(...ground.rectangle);
  const provider = await Cesium.SingleTileImageryProvider.fromUrl(ground.base + ground.imagery.uri, {
    rectangle: Cesium.Rectangle.fromDegrees(...ground.rectangle),
    credit: 'base map: the model\'s DEM hillshade and GIS layers',
  });
  return viewer.imageryLayers.addImageryProvider(provider);
}

export class Underground {
  constructor(viewer) {
    this.viewer = viewer;
    this.opacity = 1;
    this.on = false;
  }

  /** Ground opacity 0..1; below 1 the globe is translucent and the camera may go under it. */
  set(opacity, on = this.on) {
    const { scene } = this.viewer;
    const globe = scene.globe;
    this.opacity = opacity;
    this.on = on;
    const alpha = on ? Math.min(opacity, 0.35) : opacity;
    globe.show = alpha > 0.01;
    globe.translucency.enabled = alpha < 0.999;
    globe.translucency.frontFaceAlpha = alpha;
    globe.translucency.backFaceAlpha = alpha;
    globe.undergroundColor = Cesium.Color.fromCssColorString('#2b2b2b').withAlpha(0.6);
    scene.screenSpaceCameraController.enableCollisionDetection = !(on || alpha < 0.999);
    scene.requestRender();
  }
}
